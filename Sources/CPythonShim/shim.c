// Everything in the shim is `static inline` in include/CPythonShim.h; SwiftPM needs one
// source file per C target.
#include "CPythonShim.h"
