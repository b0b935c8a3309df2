"""``cxstream bench``: throughput, latency, memory and state size of the worker, measured
against a raw aiokafka consumer and a do-nothing Faust agent in the same run.

`run` is the entry point (`run_bench`) and chains the phases of `windows`, `phases` and
`latency`, which share the pieces in `base`; `report` holds the pure helpers and the table.

May import anything in the package (it is a tool).
"""
