// swift-tools-version:6.0
// The native core of subinterpreter_parallelism.
//
// Built by setup.py (`swift build -c release -Xcc -I<python include dir>`); the product
// `libSubinterpreterParallelism.so` is copied into the Python package as `_native<EXT_SUFFIX>`.
import PackageDescription

let package = Package(
    name: "SubinterpreterParallelism",
    products: [
        .library(name: "SubinterpreterParallelism", type: .dynamic, targets: ["NativeExtension"]),
    ],
    // No dependencies: a build needs no network and no package resolution, so an sdist builds
    // offline (swift-collections' Deque was the only one; RingBuffer.swift replaces it).
    targets: [
        // Only what Swift cannot import from <Python.h>: macros, object layouts, constants.
        .target(name: "CPythonShim"),
        // Threads, queues, parking, cancellation and statistics: no Python in here,
        // so `swift test` covers it on its own.
        .target(
            name: "ParallelRuntime",
            // Lets the extension specialise the generic queue for its element types: without it
            // every queue operation looks up generic metadata at run time (~7% of a tiny task).
            swiftSettings: [.unsafeFlags(["-cross-module-optimization"])]
        ),
        // The `_native` extension module: worker interpreters and the Python-facing types.
        .target(
            name: "NativeExtension",
            dependencies: ["CPythonShim", "ParallelRuntime"],
            exclude: ["exports.map"],  // the linker version script, passed by setup.py
            linkerSettings: [
                .unsafeFlags(["-static-stdlib"]),
            ]
        ),
        .testTarget(name: "ParallelRuntimeTests", dependencies: ["ParallelRuntime"]),
    ],
    swiftLanguageModes: [.v6]
)
