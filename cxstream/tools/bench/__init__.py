"""``cxstream bench``: throughput, latency, memory and state size of the worker, measured
against a raw aiokafka consumer and a do-nothing Faust agent in the same run.

May import anything in the package (it is a tool).
"""
