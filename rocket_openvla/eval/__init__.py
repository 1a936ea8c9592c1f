"""Closed-loop evaluation: LIBERO with OpenVLA-OFT's protocol (`vla-scripts/eval_libero.py`).

`protocol` (the simulator-free parts), `policies` (what is queried), `results` (bookkeeping and the results
schema), `config` (`EvalConfig`), `libero` (the simulator side; LIBERO itself is imported only when run), `runner`
(worker processes, the hosted policy, `evaluate`).
"""
