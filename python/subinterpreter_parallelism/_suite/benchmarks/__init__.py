"""The benchmark suite of subinterpreter_parallelism, shipped with the package.

Run it with ``make bench`` or ``python -m subinterpreter_parallelism bench [--quick]``. It is the
top-level package ``benchmarks`` of the folder ``subinterpreter_parallelism/_suite/`` (see
``subinterpreter_parallelism.bench`` for why it is not a subpackage).

Modules, each importing only those listed above it (tests/test_bench.py checks there is no cycle):

    workloads.py    the task functions every competitor (and the demo) runs: light, stdlib only
    measure.py      clocks, CPU time, memory, machine facts
    seed_design.py  the seed's design: a new thread and own-GIL interpreter per call
    competitors.py  serial, threads, process pools, loky, stdlib interpreter pool, seed design,
                    this project: each described by its abilities, never by name checks
    libraries.py    the five popular pure-Python libraries' tasks and inputs
    records.py      the records a scenario returns; the helpers the scenarios share
    scenarios_*.py  what is measured, one function per workload: cpu (a, b), tiny (c), data (d),
                    pools (e, f), queue (g), cancel (h), libraries (i), widths (j)
    table_tasks.py, shared_table.py   (l) and (m): a big read-only table every worker reads
    scenarios.py    the workloads by name; runs one
    cell.py         one workload x one competitor, in a fresh process
    cpu_per_task.py (k) CPU time per task inside the task, with bare interpreters; perf stat
    cpu_report.py   its tables and target
    plan.py         the workloads' titles and sizes
    results.py      a run's results, looked up by workload, case and competitor
    summary.py      the summary table and the formatting every table shares
    targets.py      the project's speed targets, met or not
    report.py       the Markdown report; the benchmarks page's figures and the targets section
    plot.py         the PNG
    suite.py        runs the cells; the command line

benchmarks/forwarding_cost.py and benchmarks/dask_throughput.py, in the source tree, are
separate scripts for those features.
"""
