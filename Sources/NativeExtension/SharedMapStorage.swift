// The native side of `sp.SharedMap`: one map's region (SharedMapFormat.swift), built from a
// dict or mapped from a file, and read by every interpreter at once.
//
// Each interpreter's handle is a Python object retaining the same `SharedMapStorage` (Swift's
// reference count is atomic), so the map lives while any handle lives, in any interpreter, and
// its memory is returned (freed, or unmapped) when the last one goes. The region never changes
// after it is built: a lookup reads it without any lock, under its own interpreter's GIL only.
@preconcurrency import CPythonShim
import Glibc
import Synchronization

final class SharedMapStorage: NativeBacked, @unchecked Sendable {
    /// Where the region lives, and so how it is returned.
    private enum Memory { case heap, mapped }

    /// The entry a lookup found: its bytes, valid while the storage lives.
    struct Record {
        let key: UnsafeRawBufferPointer
        /// The key as built, when it differs from the canonical `key` (see SharedMapKeys).
        let originalKey: UnsafeRawBufferPointer?
        let value: UnsafeRawBufferPointer
    }

    let id: Int64
    let base: UnsafeRawPointer
    let totalSize: Int
    let count: Int
    /// The file the region is mapped from (as given to `open`), or nil.
    let path: String?
    private let memory: Memory
    private let slotMask: UInt64
    private let entries: UnsafeRawPointer
    private let slots: UnsafeRawPointer
    /// The end of the records (where the entry table starts).
    private let recordsEnd: Int
    /// Queues and maps whose handles were pickled inside values: alive as long as this map.
    private let pins: QueuePins?
    /// The file written for other processes (`fileForProcesses`) and the process that wrote it
    /// (a forked child's copy of this object must not delete it).
    private let spilled = Mutex<(path: String, pid: pid_t)?>(nil)
    /// The region's checksum once computed (a built map computes it on its first save).
    private let knownChecksum = Mutex<UInt64?>(nil)

    /// A slot: the top 24 bits of its key's hash, then its record's offset.
    static let offsetBits: UInt64 = 40
    private static let offsetMask: UInt64 = (1 << offsetBits) - 1

    private static let nextID = Atomic<Int64>(1)
    private static let registry = Mutex<[Int64: WeakStorage]>([:])
    private struct WeakStorage: @unchecked Sendable { weak var storage: SharedMapStorage? }
    /// Maps alive in this process and their bytes (what `_live()` reports, for tests).
    static let liveCount = Atomic<Int>(0)
    static let liveBytes = Atomic<Int>(0)

    private init(region: UnsafeRawPointer, header: SharedMapHeader, memory: Memory, path: String?, pins: QueuePins?) {
        id = SharedMapStorage.nextID.add(1, ordering: .relaxed).oldValue
        base = region
        totalSize = Int(header.totalSize)
        count = Int(header.count)
        slotMask = header.slotCount - 1
        entries = region + Int(header.entriesOffset)
        slots = region + Int(header.slotsOffset)
        recordsEnd = Int(header.entriesOffset)
        self.memory = memory
        self.path = path
        self.pins = pins
        if memory == .mapped { knownChecksum.withLock { $0 = header.checksum } }
        SharedMapStorage.liveCount.add(1, ordering: .relaxed)
        SharedMapStorage.liveBytes.add(totalSize, ordering: .relaxed)
        SharedMapStorage.registry.withLock { $0[id] = WeakStorage(storage: self) }
    }

    deinit {
        let id = self.id
        SharedMapStorage.registry.withLock { registry in
            if registry[id]?.storage == nil { registry.removeValue(forKey: id) }
        }
        switch memory {
        case .heap: free(UnsafeMutableRawPointer(mutating: base))
        case .mapped: munmap(UnsafeMutableRawPointer(mutating: base), totalSize)
        }
        if let (file, pid) = spilled.withLock({ $0 }), pid == getpid() { unlink(file) }
        SharedMapStorage.liveCount.subtract(1, ordering: .relaxed)
        SharedMapStorage.liveBytes.subtract(totalSize, ordering: .relaxed)
    }

    /// The live map with this id, if any interpreter of this process still holds it.
    static func lookup(_ id: Int64) -> SharedMapStorage? {
        registry.withLock { $0[id]?.storage }
    }

    // MARK: - Reading (no lock: the region is immutable)

    /// Entry `index`'s bytes (in insertion order), or nil when they leave the records.
    func record(_ index: Int) -> Record? {
        guard index >= 0, index < count else { return nil }
        return record(at: Int(truncatingIfNeeded: entries.load(fromByteOffset: index * 8, as: UInt64.self)))
    }

    /// The bytes of the record at `offset`, or nil when they leave the records (a damaged file
    /// read without verification: every length is checked, so no read leaves the region).
    private func record(at offset: Int) -> Record? {
        guard offset >= SharedMapHeader.size, offset <= recordsEnd - 16 else { return nil }
        let keyLength = Int(base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        let originalLength = Int(base.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
        let valueLength = Int(truncatingIfNeeded: base.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
        let start = offset + 16
        let room = recordsEnd - start
        guard valueLength >= 0, valueLength <= room, keyLength + originalLength <= room - valueLength else {
            return nil
        }
        return Record(
            key: UnsafeRawBufferPointer(start: base + start, count: keyLength),
            originalKey: originalLength == 0
                ? nil : UnsafeRawBufferPointer(start: base + start + keyLength, count: originalLength),
            value: UnsafeRawBufferPointer(start: base + start + keyLength + originalLength, count: valueLength))
    }

    /// The entry whose canonical key has `hash` (`SharedMapKeys.hash`) and whose bytes
    /// `matches` accepts, or nil.
    @inline(__always)
    func find(hash: UInt64, _ matches: (UnsafeRawBufferPointer) -> Bool) -> Record? {
        let fingerprint = hash >> SharedMapStorage.offsetBits
        var slot = hash & slotMask
        // At most one round: a damaged table without an empty slot must not loop forever.
        for _ in 0...slotMask {
            let word = slots.load(fromByteOffset: Int(slot) * 8, as: UInt64.self)
            if word == 0 { return nil }
            if word >> SharedMapStorage.offsetBits == fingerprint,
                let found = record(at: Int(word & SharedMapStorage.offsetMask)), matches(found.key)
            {
                return found
            }
            slot = (slot + 1) & slotMask
        }
        return nil
    }

    // MARK: - Building

    /// The map of `dict` (an exact dict, whose keys `SharedMapKeys` can hold), or nil with an
    /// exception set. `pickle` encodes a value that `ShareableCodec` cannot hold.
    static func build(_ dict: PyObjectPointer, pickle: (PyObjectPointer) -> PyObjectPointer?) -> SharedMapStorage? {
        let size = Int(PyDict_Size(dict))
        guard var region = RegionBuilder(capacity: SharedMapHeader.size + size * 64) else { return nil }
        region.used = SharedMapHeader.size
        var offsets: [UInt64] = []
        var hashes: [UInt64] = []
        offsets.reserveCapacity(size)
        hashes.reserveCapacity(size)
        var pins: QueuePins?
        let built = QueuePins.collecting(into: &pins) { () -> Bool in
            var position: Py_ssize_t = 0
            var borrowedKey: PyObjectPointer?
            var borrowedValue: PyObjectPointer?
            while PyDict_Next(dict, &position, &borrowedKey, &borrowedValue) != 0 {
                // Pickling a value runs Python code, which could change the dict: hold both.
                guard let key = OwnedObject(Py_NewRef(borrowedKey!)), let value = OwnedObject(Py_NewRef(borrowedValue!))
                else { return false }
                guard let hash = region.appendRecord(key.borrowed, value.borrowed, pickle: pickle) else { return false }
                offsets.append(hash.offset)
                hashes.append(hash.hash)
                if PyDict_Size(dict) != size {
                    PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during SharedMap build")
                    return false
                }
                if offsets.count % 65_536 == 0, PyErr_CheckSignals() != 0 { return false }
            }
            return true
        }
        guard built, let header = region.finish(offsets: offsets, hashes: hashes) else {
            region.release()
            return nil
        }
        return SharedMapStorage(region: region.base!, header: header, memory: .heap, path: nil, pins: pins)
    }

    // MARK: - Files

    /// The map in the file at `path`, memory-mapped (shared with every process that maps it),
    /// or nil with OSError or ValueError set. `verify`: check the checksum (reads the whole file).
    static func open(path: String, verify: Bool) -> SharedMapStorage? {
        var failure: SharedMapFileError?
        var errorNumber: Int32 = 0
        let mapped: (UnsafeMutableRawPointer, SharedMapHeader)? = Py.withoutGIL {
            let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                errorNumber = errno
                return nil
            }
            defer { close(fd) }
            var status = stat()
            guard fstat(fd, &status) == 0 else {
                errorNumber = errno
                return nil
            }
            let size = Int(status.st_size)
            guard size >= SharedMapHeader.size else {
                failure =
                    size == 0
                    ? .truncated("it is empty") : .foreign("it has \(size) bytes, fewer than a SharedMap header")
                return nil
            }
            let region = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0)
            guard let region, region != MAP_FAILED else {
                errorNumber = errno
                return nil
            }
            switch SharedMapHeader.read(UnsafeRawBufferPointer(start: region, count: size)) {
            case .failure(let why):
                failure = why
            case .success(let header):
                if !verify || StableHash.regionChecksum(region, totalSize: size) == header.checksum {
                    return (region, header)
                }
                failure = .corrupt("its checksum does not match its contents")
            }
            munmap(region, size)
            return nil
        }
        if let (region, header) = mapped {
            return SharedMapStorage(region: region, header: header, memory: .mapped, path: path, pins: nil)
        }
        if let failure {
            PyErr_SetString(PyExc_ValueError, failure.message(path: path))
        } else {
            errno = errorNumber
            PyErr_SetFromErrnoWithFilename(PyExc_OSError, path)
        }
        return nil
    }

    /// Writes the map to `path` (through a temporary file renamed over it, so that a process
    /// mapping the old file keeps reading it whole); false with OSError set.
    func save(to path: String) -> Bool {
        let errorNumber = Py.withoutGIL { write(to: path) }
        guard errorNumber != 0 else { return true }
        errno = errorNumber
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, path)
        return false
    }

    /// `save` without the interpreter: 0, or the errno of what failed.
    private func write(to path: String) -> Int32 {
        let checksum = knownChecksum.withLock { known in
            if known == nil { known = StableHash.regionChecksum(base, totalSize: totalSize) }
            return known!
        }
        let temporary = "\(path).tmp-\(getpid())-\(id)"
        let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return errno }
        var header = [UInt8](repeating: 0, count: SharedMapHeader.size)
        header.withUnsafeMutableBytes { head in
            head.baseAddress!.copyMemory(from: base, byteCount: SharedMapHeader.size)
            head.storeBytes(of: checksum, toByteOffset: SharedMapHeader.checksumOffset, as: UInt64.self)
        }
        var failed = header.withUnsafeBytes { writeAll(fd, $0.baseAddress!, $0.count) }
        if failed == 0 { failed = writeAll(fd, base + SharedMapHeader.size, totalSize - SharedMapHeader.size) }
        if close(fd) != 0, failed == 0 { failed = errno }
        if failed == 0, rename(temporary, path) != 0 { failed = errno }
        if failed != 0 { unlink(temporary) }
        return failed
    }

    private func writeAll(_ fd: Int32, _ start: UnsafeRawPointer, _ count: Int) -> Int32 {
        var done = 0
        while done < count {
            let wrote = Glibc.write(fd, start + done, min(count - done, 1 << 30))
            if wrote < 0 {
                if errno == EINTR { continue }
                return errno
            }
            done += wrote
        }
        return 0
    }

    /// The file this map was mapped from or written to for other processes, if any.
    func existingFile() -> String? {
        path ?? spilled.withLock { $0?.path }
    }

    /// A file that other processes can map this map from: the one it was mapped from, else one
    /// written now at `candidate` (once per map: later calls return that one, which is deleted
    /// when the map is). Nil with OSError set when writing fails.
    func fileForProcesses(candidate: String) -> String? {
        if let path { return path }
        var errorNumber: Int32 = 0
        let file: String? = Py.withoutGIL {
            spilled.withLock { spilled in
                if let spilled { return spilled.path }
                errorNumber = write(to: candidate)
                guard errorNumber == 0 else { return nil }
                spilled = (candidate, getpid())
                return candidate
            }
        }
        if file == nil {
            errno = errorNumber
            PyErr_SetFromErrnoWithFilename(PyExc_OSError, candidate)
        }
        return file
    }
}

/// A growing region being built: header room, then records, then the tables. `realloc` grows
/// it (for large regions glibc moves pages instead of copying them).
private struct RegionBuilder {
    private(set) var base: UnsafeMutableRawPointer?
    private var capacity: Int
    var used = 0

    init?(capacity: Int) {
        self.capacity = max(capacity, 4096)
        base = malloc(self.capacity)
        if base == nil {
            PyErr_NoMemory()
            return nil
        }
    }

    /// Makes room for `count` more bytes; false with MemoryError set.
    mutating func reserve(_ count: Int) -> Bool {
        guard used + count > capacity else { return true }
        let wanted = max(used + count, capacity + capacity / 2)
        guard let grown = realloc(base, wanted) else {
            PyErr_NoMemory()
            return false
        }
        base = grown
        capacity = wanted
        return true
    }

    mutating func release() {
        free(base)
        base = nil
    }

    /// Encodes `key` at the end (again, after growing, when it did not fit); its length and
    /// whether it converted a bool or a float, or nil with an exception set.
    private mutating func appendKey(_ key: PyObjectPointer, canonical: Bool) -> (Int, Bool)? {
        for _ in 0..<2 {
            var writer = SharedMapKeys.Writer(base! + used, capacity: capacity - used)
            if let problem = SharedMapKeys.encode(key, canonical: canonical, lookup: false, into: &writer) {
                SharedMapKeys.raise(problem, key: key)
                return nil
            }
            if writer.fits {
                guard writer.length <= Int(UInt32.max) else {
                    SharedMapKeys.raise(.tooLarge("\(writer.length) bytes encoded"), key: key)
                    return nil
                }
                used += writer.length
                return (writer.length, writer.converted)
            }
            guard reserve(writer.length) else { return nil }
        }
        return nil  // unreachable: the second try has the room the first one measured
    }

    /// Appends the record of `key: value`; its offset and its key's hash, or nil with an
    /// exception set.
    mutating func appendRecord(
        _ key: PyObjectPointer, _ value: PyObjectPointer,
        pickle: (PyObjectPointer) -> PyObjectPointer?
    ) -> (offset: UInt64, hash: UInt64)? {
        let start = used
        guard reserve(16 + 256) else { return nil }
        used += 16
        guard let (keyLength, converted) = appendKey(key, canonical: true) else { return nil }
        let hash = SharedMapKeys.hash(canonical: UnsafeRawBufferPointer(start: base! + start + 16, count: keyLength))
        var originalLength = 0
        if converted {
            guard let (length, _) = appendKey(key, canonical: false) else { return nil }
            originalLength = length
        }
        let valueLength: Int
        if let size = ShareableCodec.encodedSize(value) {
            guard reserve(size) else { return nil }
            ShareableCodec.encode(value, into: base! + used)
            valueLength = size
        } else {
            guard let pickled = OwnedObject(pickle(value)) else { return nil }
            let bytes = Py.contents(ofBytes: pickled.borrowed)
            guard reserve(bytes.count) else { return nil }
            (base! + used).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            valueLength = bytes.count
        }
        used += valueLength
        base!.storeBytes(of: UInt32(keyLength), toByteOffset: start, as: UInt32.self)
        base!.storeBytes(of: UInt32(originalLength), toByteOffset: start + 4, as: UInt32.self)
        base!.storeBytes(of: UInt64(valueLength), toByteOffset: start + 8, as: UInt64.self)
        return (UInt64(start), hash)
    }

    /// Appends the entry and slot tables and writes the header (its checksum is computed when
    /// the map is first saved); nil with MemoryError set.
    mutating func finish(offsets: [UInt64], hashes: [UInt64]) -> SharedMapHeader? {
        let count = offsets.count
        // At most two thirds full, so that a probe meets an empty slot soon.
        var slotCount = 8
        while slotCount < count + count / 2 + 1 { slotCount *= 2 }
        let entriesOffset = (used + 7) & ~7
        let slotsOffset = entriesOffset + count * 8
        let totalSize = slotsOffset + slotCount * 8
        guard totalSize < 1 << SharedMapStorage.offsetBits else {
            PyErr_SetString(PyExc_ValueError, "a SharedMap holds at most 1 TiB")
            return nil
        }
        guard reserve(totalSize - used) else { return nil }
        let base = self.base!
        if count > 0 {
            offsets.withUnsafeBytes { (base + entriesOffset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        memset(base + used, 0, entriesOffset - used)
        memset(base + slotsOffset, 0, slotCount * 8)
        let slots = (base + slotsOffset).bindMemory(to: UInt64.self, capacity: slotCount)
        let mask = UInt64(slotCount - 1)
        let bits = SharedMapStorage.offsetBits
        for (offset, hash) in zip(offsets, hashes) {
            var slot = Int(hash & mask)
            while slots[slot] != 0 { slot = (slot + 1) & Int(mask) }
            slots[slot] = (hash >> bits) << bits | offset
        }
        used = totalSize
        if let shrunk = realloc(base, totalSize) { self.base = shrunk }
        let header = SharedMapHeader(
            count: UInt64(count), slotCount: UInt64(slotCount), entriesOffset: UInt64(entriesOffset),
            slotsOffset: UInt64(slotsOffset), totalSize: UInt64(totalSize), checksum: 0)
        header.write(to: self.base!)
        return header
    }
}
