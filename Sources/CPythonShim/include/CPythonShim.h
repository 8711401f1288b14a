// The C shim: only what Swift cannot import from <Python.h> on its own: function-like macros
// (the type checks, the unchecked accessors), the object and module-state layouts, `Py_None`,
// compound constants and the slot ids that Python 3.15 made macros. The decisions live in
// Swift; one classification is still spelled here, `sp_ShareableKind`, since it is the
// shareable format's switch on exact types, read once per encoded item.
#ifndef CPYTHON_SHIM_H
#define CPYTHON_SHIM_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX < 0x030C0000
#error "subinterpreter_parallelism needs Python 3.12 or newer (own-GIL interpreters, PEP 684)"
#endif
#ifdef Py_GIL_DISABLED
#error "subinterpreter_parallelism is for builds with a GIL; on a free-threaded build use threads"
#endif

/// The instance layout of every type the extension defines: a Python object header
/// followed by one retained pointer to the Swift object that does the work.
typedef struct {
    PyObject_HEAD
    void *swift_object;
} sp_BoxObject;

/// Per-module state (one per interpreter that imports `_native`): the heap types and the
/// objects the native code needs from Python, all owned by that interpreter.
typedef struct {
    PyObject *pool_type;
    PyObject *queue_type;
    PyObject *result_buffer_type;
    PyObject *lent_buffer_type; /* LentBuffer: a caller's memoryview as a worker sees it */
    PyObject *queue_closed;   /* QueueClosed exception class */
    PyObject *task_interrupted; /* TaskInterrupted exception class */
    PyObject *queue_empty;    /* queue.Empty, imported on first use */
    PyObject *queue_full;     /* queue.Full, imported on first use */
    PyObject *dumps;          /* subinterpreter_parallelism._pickling.dumps, imported on first use */
    PyObject *loads;          /* subinterpreter_parallelism._pickling.loads */
    PyObject *c_dumps;        /* _pickle.dumps, for the pool's fast paths, imported on first use */
    PyObject *c_loads;        /* _pickle.loads */
    PyObject *stdlib_sleep;   /* time.sleep, taken before a worker replaces it with _native.sleep */
    PyObject *shared_map_type;          /* SharedMap (the native base of sp.SharedMap) */
    PyObject *shared_map_iterator_type; /* SharedMapIterator */
} sp_ModuleState;

/// Number of PyObject* fields in sp_ModuleState (for traverse/clear).
#define SP_MODULE_STATE_FIELDS 15
_Static_assert(sizeof(sp_ModuleState) == SP_MODULE_STATE_FIELDS * sizeof(PyObject *),
               "sp_ModuleState must hold only PyObject pointers");

static inline PyObject **sp_ModuleState_Fields(sp_ModuleState *state) { return (PyObject **)state; }
static inline int sp_ModuleState_FieldCount(void) { return SP_MODULE_STATE_FIELDS; }
static inline const char *sp_CompiledPythonVersion(void) { return PY_VERSION; }

static inline PyObject *sp_None(void) { return Py_None; }
static inline PyObject *sp_True(void) { return Py_True; }
static inline PyObject *sp_False(void) { return Py_False; }
static inline PyObject *sp_NewNone(void) { return Py_NewRef(Py_None); }
static inline PyObject *sp_NewBool(int value) { return PyBool_FromLong(value); }

static inline int sp_Bytes_Check(PyObject *o) { return PyBytes_Check(o); }
static inline int sp_Unicode_Check(PyObject *o) { return PyUnicode_Check(o); }
static inline int sp_Long_Check(PyObject *o) { return PyLong_Check(o); }
static inline int sp_Float_Check(PyObject *o) { return PyFloat_Check(o); }
static inline int sp_List_Check(PyObject *o) { return PyList_Check(o); }
static inline int sp_Tuple_Check(PyObject *o) { return PyTuple_Check(o); }
static inline int sp_Dict_Check(PyObject *o) { return PyDict_Check(o); }
static inline int sp_Tuple_CheckExact(PyObject *o) { return PyTuple_CheckExact(o); }
static inline int sp_Dict_CheckExact(PyObject *o) { return PyDict_CheckExact(o); }
static inline int sp_Unicode_CheckExact(PyObject *o) { return PyUnicode_CheckExact(o); }
static inline int sp_CFunction_Check(PyObject *o) { return PyCFunction_Check(o); }

static inline PyObject *sp_Tuple_GET_ITEM(PyObject *t, Py_ssize_t i) { return PyTuple_GET_ITEM(t, i); }
static inline PyObject *sp_List_GET_ITEM(PyObject *l, Py_ssize_t i) { return PyList_GET_ITEM(l, i); }
static inline char *sp_Bytes_AS_STRING(PyObject *b) { return PyBytes_AS_STRING(b); }
static inline Py_ssize_t sp_Bytes_GET_SIZE(PyObject *b) { return PyBytes_GET_SIZE(b); }

static inline int sp_MemoryView_Check(PyObject *o) { return PyMemoryView_Check(o); }
static inline Py_buffer *sp_MemoryView_GET_BUFFER(PyObject *o) { return PyMemoryView_GET_BUFFER(o); }
static inline int sp_ByteArray_CheckExact(PyObject *o) { return PyByteArray_CheckExact(o); }
static inline Py_ssize_t sp_REFCNT(PyObject *o) { return Py_REFCNT(o); }

/// Buffer request flags that are compound macros.
static const int sp_BUF_FULL_RO = PyBUF_FULL_RO;
static const int sp_BUF_ND = PyBUF_ND;
static const int sp_BUF_STRIDES = PyBUF_STRIDES;
static const int sp_BUF_FORMAT = PyBUF_FORMAT;
static const int sp_BUF_WRITABLE = PyBUF_WRITABLE;
static const int sp_BUF_F_CONTIGUOUS = PyBUF_F_CONTIGUOUS;
static const int sp_BUF_C_CONTIGUOUS = PyBUF_C_CONTIGUOUS;
static const int sp_BUF_ANY_CONTIGUOUS = PyBUF_ANY_CONTIGUOUS;

/// What `ShareableCodec` can carry without pickle: the exact types (no subclasses) that the
/// stdlib's `concurrent.interpreters` shares natively, plus the immutable containers
/// `complex`, `frozenset` and (3.15+) `frozendict`. 0: none of them.
static const int SP_SHARE_NONE = 1, SP_SHARE_TRUE = 2, SP_SHARE_FALSE = 3, SP_SHARE_INT = 4,
    SP_SHARE_FLOAT = 5, SP_SHARE_STR = 6, SP_SHARE_BYTES = 7, SP_SHARE_TUPLE = 8,
    SP_SHARE_COMPLEX = 9, SP_SHARE_FROZENSET = 10, SP_SHARE_FROZENDICT = 11;
static inline int sp_ShareableKind(PyObject *o) {
    if (o == Py_None) return SP_SHARE_NONE;
    if (o == Py_True) return SP_SHARE_TRUE;
    if (o == Py_False) return SP_SHARE_FALSE;
    if (PyLong_CheckExact(o)) return SP_SHARE_INT;
    if (PyUnicode_CheckExact(o)) return SP_SHARE_STR;
    if (PyBytes_CheckExact(o)) return SP_SHARE_BYTES;
    if (PyFloat_CheckExact(o)) return SP_SHARE_FLOAT;
    if (PyTuple_CheckExact(o)) return SP_SHARE_TUPLE;
    if (PyComplex_CheckExact(o)) return SP_SHARE_COMPLEX;
    if (PyFrozenSet_CheckExact(o)) return SP_SHARE_FROZENSET;
#ifdef PyFrozenDict_CheckExact
    if (PyFrozenDict_CheckExact(o)) return SP_SHARE_FROZENDICT;
#endif
    return 0;
}
/// A new `frozendict` copying the exact dict `d` (3.15+); elsewhere NULL with TypeError set
/// (no format holds one there: `sp_ShareableKind` never answers SP_SHARE_FROZENDICT).
static inline PyObject *sp_FrozenDict_FromDict(PyObject *d) {
#ifdef PyFrozenDict_CheckExact
    return PyFrozenDict_New(d);
#else
    (void)d;
    PyErr_SetString(PyExc_TypeError, "frozendict needs Python 3.15 or newer");
    return NULL;
#endif
}
static inline Py_ssize_t sp_Tuple_GET_SIZE(PyObject *t) { return PyTuple_GET_SIZE(t); }
static inline void sp_Tuple_SET_ITEM(PyObject *t, Py_ssize_t i, PyObject *v) { PyTuple_SET_ITEM(t, i, v); }
static inline double sp_Float_AS_DOUBLE(PyObject *f) { return PyFloat_AS_DOUBLE(f); }

/// The size in bytes of an exact `bytes`, `bytearray` or `memoryview`, else -1: the argument
/// kinds that travel out of band (see WireFormat.outOfBandKind in Wire.swift).
static inline Py_ssize_t sp_BinarySize(PyObject *o) {
    if (PyBytes_CheckExact(o)) return PyBytes_GET_SIZE(o);
    if (PyByteArray_CheckExact(o)) return PyByteArray_GET_SIZE(o);
    if (PyMemoryView_Check(o)) return PyMemoryView_GET_BUFFER(o)->len;
    return -1;
}

/// Slot ids. Python 3.15 turned some of them into function-like macros
/// (`_Py_SLOT_COMPAT_VALUE(old, new)`) that Swift cannot import, so every slot the extension
/// uses is spelled here once, for all versions.
static const int sp_slot_mod_exec = Py_mod_exec;
static const int sp_slot_mod_multiple_interpreters = Py_mod_multiple_interpreters;
static const int sp_slot_tp_dealloc = Py_tp_dealloc;
static const int sp_slot_tp_doc = Py_tp_doc;
static const int sp_slot_tp_methods = Py_tp_methods;
static const int sp_slot_tp_free = Py_tp_free;
static const int sp_slot_tp_new = Py_tp_new;
static const int sp_slot_tp_getset = Py_tp_getset;
static const int sp_slot_bf_getbuffer = Py_bf_getbuffer;
static const int sp_slot_bf_releasebuffer = Py_bf_releasebuffer;
static const int sp_slot_sq_length = Py_sq_length;
static const int sp_slot_sq_contains = Py_sq_contains;
static const int sp_slot_mp_length = Py_mp_length;
static const int sp_slot_mp_subscript = Py_mp_subscript;
static const int sp_slot_tp_iter = Py_tp_iter;
static const int sp_slot_tp_iternext = Py_tp_iternext;

static inline PyModuleDef_Base sp_ModuleDef_HEAD_INIT(void) {
    PyModuleDef_Base base = PyModuleDef_HEAD_INIT;
    return base;
}
static inline void *sp_MOD_PER_INTERPRETER_GIL_SUPPORTED(void) {
    return Py_MOD_PER_INTERPRETER_GIL_SUPPORTED;
}
static inline void *sp_MOD_MULTIPLE_INTERPRETERS_SUPPORTED(void) {
    return Py_MOD_MULTIPLE_INTERPRETERS_SUPPORTED;
}

/// An own-GIL, fully isolated interpreter configuration (the fields of
/// `_PyInterpreterConfig_INIT`, which is a macro).
static inline PyInterpreterConfig sp_IsolatedInterpreterConfig(void) {
    PyInterpreterConfig config = {
        .use_main_obmalloc = 0,
        .allow_fork = 0,
        .allow_exec = 0,
        .allow_threads = 1,
        .allow_daemon_threads = 0,
        .check_multi_interp_extensions = 1,
        .gil = PyInterpreterConfig_OWN_GIL,
    };
    return config;
}

#endif
