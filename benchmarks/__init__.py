"""The benchmark suite of subinterpreter_parallelism (source tree only, not in the wheel).

Run it with ``make bench`` or ``python -m subinterpreter_parallelism bench [--quick]``.

    workloads.py    the task functions every competitor runs (importable, stdlib only)
    competitors.py  serial, threads, process pools, loky, stdlib interpreter pool, seed design, this
    seed_design.py  the seed's design: a new thread and own-GIL interpreter per call
    scenarios.py    what is measured, one function per workload (a)-(h)
    cell.py         one workload x one competitor, in a fresh process
    measure.py      clocks, CPU time, memory, machine facts
    suite.py        plans and runs the cells; the command line
    report.py       Markdown tables, targets, the README section
    plot.py         the PNG

forwarding_cost.py and dask_throughput.py are separate scripts for those features.
"""
