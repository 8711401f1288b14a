"""The seed's demo: py_factorial as parallel tasks via multiprocessing, sub-interpreters,
native Swift, threads and serially. `python demo.py --help` for the options."""

from subinterpreter_parallelism.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
