// Why changes to the process environment and process starts take turns.
//
// A process started without an explicit environment gets the live C `environ` array: the
// "spawn" and "forkserver" start methods of multiprocessing (and its resource tracker) call
// `_posixsubprocess.fork_exec` with env=None, so a vfork child calls execv, and the kernel reads
// `environ` while the parent's other threads go on. It reads the array twice, counting its
// entries and then copying them; when another thread's unsetenv() removes an entry in between,
// the last pointer it copies is NULL and execve fails with EFAULT. multiprocessing never reads
// the exec error (util.spawnv_passfds): the child exits with status 255 and prints nothing, and
// the parent gets BrokenPipeError (writing the child's start data), BrokenProcessPool, or
// "resource_tracker: process died unexpectedly" (python/cpython#157613 asks for an explicit
// environment). numpy's import sets OPENBLAS_MAIN_FREE with os.putenv and removes it with
// os.unsetenv, and a worker interpreter runs that import again in every task that needs numpy,
// since it refuses to load there: exactly the tasks that `fallback="process"` then moves to
// processes that it starts meanwhile.
//
// So the fallback starts its processes inside `withEnvironmentLocked`, and worker interpreters
// call os.putenv and os.unsetenv (through which os.environ writes) inside it too
// (`_worker.guard_environment_writes`). One lock for the whole process: any pool's workers,
// any pool's fallback. C code that calls setenv() itself is not covered.
//
// A new interpreter reads `environ` too: its `posix` module copies the array into `os.environ`
// as it starts. A worker's putenv meanwhile may move the array (glibc reallocates it to add an
// entry) and unsetenv shifts its entries, so that copy read freed memory: a segfault inside
// `_install_external_importers`, once in CI. Workers create their interpreters under the lock.
@preconcurrency import CPythonShim
import Glibc

enum EnvironmentLock {
    /// Recursive: a call made under the lock may change the environment itself.
    nonisolated(unsafe) private static let mutex: UnsafeMutablePointer<pthread_mutex_t> = {
        let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        initialize(mutex)
        inForkedChild = mutex
        // A fork while another thread holds it would leave the child's copy held by nobody:
        // the child, which has only the forking thread, starts with a fresh one.
        precondition(pthread_atfork(nil, nil, { if let mutex = inForkedChild { initialize(mutex) } }) == 0)
        return mutex
    }()

    /// The mutex, for the fork child handler (which must not run `mutex`'s lazy initializer).
    nonisolated(unsafe) private static var inForkedChild: UnsafeMutablePointer<pthread_mutex_t>?

    private static func initialize(_ mutex: UnsafeMutablePointer<pthread_mutex_t>) {
        var attributes = pthread_mutexattr_t()
        precondition(pthread_mutexattr_init(&attributes) == 0, "pthread_mutexattr_init failed")
        defer { pthread_mutexattr_destroy(&attributes) }
        precondition(
            pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_RECURSIVE)) == 0,
            "pthread_mutexattr_settype failed")
        precondition(pthread_mutex_init(mutex, &attributes) == 0, "pthread_mutex_init failed")
    }

    /// `with_environment_lock(function, /, *args, **kwargs)`: calls `function` holding the lock,
    /// which it waits for with the GIL released: the holder may need this interpreter's GIL (the
    /// fallback's holder needs the main interpreter's), and its other threads go on meanwhile.
    static let call: KeywordMethod = { _, args, count, keywordNames in
        guard count >= 1, let function = args?[0] else {
            return Py.fail(PyExc_TypeError, "with_environment_lock() needs the function to call")
        }
        return whileHeld { PyObject_Vectorcall(function, args! + 1, Int(count) - 1, keywordNames) }
    }

    /// Runs `body` holding the lock. Called with a GIL held (a worker creating its interpreter
    /// holds the main interpreter's); when another thread has the lock, it waits with that GIL
    /// released, since the holder may need it: no thread ever blocks on the lock while holding
    /// a GIL.
    static func whileHeld<T>(_ body: () -> T) -> T {
        if pthread_mutex_trylock(mutex) != 0 {
            let locked = Py.withoutGIL { pthread_mutex_lock(mutex) }
            precondition(locked == 0, "pthread_mutex_lock failed")
        }
        defer { precondition(pthread_mutex_unlock(mutex) == 0, "pthread_mutex_unlock failed") }
        return body()
    }
}
