"""What the commands other than ``worker`` do: the local broker, ``produce``, ``tail``, the
simulator, the demo, terminal rendering, progress lines and the benchmark (``bench/``).

May import anything in the package. Nothing outside ``tools`` (but ``cli``) imports it: the
production path (``worker``, ``api``, ``notify``) runs without it.
"""
