// What happens to a child forked while worker interpreters exist.
//
// CPython cannot continue in such a child: `PyOS_AfterFork_Child` deletes every interpreter but
// the main one without a current thread state (python/cpython#101437), and the child hangs
// (3.12.1), aborts ("Fatal Python error: PyThreadState_Get", 3.13.0) or segfaults (3.14, 3.15). A Python-level
// hook cannot refuse the fork (`os.register_at_fork(before=...)` cannot raise), and nothing in
// Python runs in the child before that crash. A `pthread_atfork` child handler does: glibc runs
// it inside `fork()`, before CPython's own after-fork code. So a fork that Python makes
// (`os.fork()`, multiprocessing's "fork" start method, `forkpty`, a `subprocess` with
// `preexec_fn`), marked by the Python before-fork hook on the forking thread, makes the child
// say why on stderr and exit with `exitStatus`, while worker interpreters are alive. Forks
// that do not go through Python (`subprocess` without `preexec_fn`, C libraries) run no
// Python in the child and are left alone.
@preconcurrency import CPythonShim
import Glibc
import Synchronization

enum ForkGuard {
    /// The exit status of a refused child.
    static let exitStatus: Int32 = 70  // EX_SOFTWARE

    /// Worker interpreters alive in this process (created and not yet ended).
    static let liveInterpreters = Atomic<Int>(0)

    /// Whether children are refused at all (set once, before any fork, by `install`).
    nonisolated(unsafe) private static var enabled = false

    /// Marks the thread that is forking through Python (set before, cleared after, the fork).
    private static let forkingKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()

    /// The message, prepared before any fork: the child handler must not allocate.
    nonisolated(unsafe) private static var message: [UInt8] = []

    private static let installed = Atomic<Bool>(false)

    /// Installs the child handler once per process (`pthread_atfork`). `refuseChildren`: the
    /// running Python is one whose children cannot run (`_versions.FORK_CHILD_ABORTS`).
    static func install(refuseChildren: Bool) {
        guard !installed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = forkingKey
        _ = liveInterpreters.load(ordering: .relaxed)
        message = Array(
            ("subinterpreter_parallelism: this process was forked (os.fork(), or multiprocessing's "
                + "\"fork\" start method) while interpreter pools were running. Python \(String(cString: sp_CompiledPythonVersion())) "
                + "cannot run in such a child (it would abort: python/cpython#101437), so the child exits with status "
                + "\(exitStatus). Use the \"spawn\" or \"forkserver\" start method, or fork before creating the pools "
                + "or after shutting them down.\n").utf8)
        enabled = refuseChildren
        precondition(pthread_atfork(nil, nil, childHandler) == 0, "pthread_atfork failed")
    }

    /// Called by the Python before-fork hook, on the forking thread.
    static func markForking() {
        precondition(
            pthread_setspecific(forkingKey, UnsafeRawPointer(bitPattern: 1)) == 0, "pthread_setspecific failed")
    }

    /// Called by the Python after-fork hooks (parent, and a child that may go on).
    static func unmarkForking() {
        precondition(pthread_setspecific(forkingKey, nil) == 0, "pthread_setspecific failed")
    }

    private static let childHandler: @convention(c) () -> Void = {
        guard enabled, pthread_getspecific(forkingKey) != nil,
            liveInterpreters.load(ordering: .acquiring) > 0
        else { return }
        message.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if written <= 0 { break }
                offset += written
            }
        }
        _exit(exitStatus)
    }
}
