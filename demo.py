"""The demo: the seed's comparison (py_factorial as parallel tasks: process pools, sub-interpreters,
threads, serially; the same loop in Swift as a reference), then where interpreters win, each
measured now against the alternatives. `python demo.py --help` for the options."""

# Everything under the guard: spawned and forkserver processes import this file as their main
# module, and it must not load this project into them (their start-up and memory are measured).
if __name__ == "__main__":
    from subinterpreter_parallelism.demo import main

    raise SystemExit(main())
