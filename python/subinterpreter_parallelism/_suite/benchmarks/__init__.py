"""The benchmark suite of subinterpreter_parallelism, shipped with the package.

Run it with ``make bench`` or ``python -m subinterpreter_parallelism bench [--quick]``. It is the
top-level package ``benchmarks`` of the folder ``subinterpreter_parallelism/_suite/`` (see
``subinterpreter_parallelism.bench`` for why it is not a subpackage).

    workloads.py    the task functions every competitor runs (importable, stdlib only)
    competitors.py  serial, threads, process pools, loky, stdlib interpreter pool, seed design, this
    seed_design.py  the seed's design: a new thread and own-GIL interpreter per call
    scenarios.py    what is measured, one function per workload (a)-(h)
    cell.py         one workload x one competitor, in a fresh process
    measure.py      clocks, CPU time, memory, machine facts
    suite.py        plans and runs the cells; the command line
    report.py       Markdown tables, targets, the README section
    plot.py         the PNG

benchmarks/forwarding_cost.py and benchmarks/dask_throughput.py, in the source tree, are
separate scripts for those features.
"""
