"""The command line: ``dtviz stats | table | claims | sample | sweep | blocks | plot | serve …``.

``main`` parses and dispatches (torch is imported only after the arguments parse), ``args`` holds the
flags several commands share, one module per larger command. Imports: any wing; nothing imports it.
"""
