// A native tool (named like KTX's toktx) that fails the way its first argument says, for
// tests/diagnostics/test_runtimes.py and test_children.py.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

int main(int argc, char** argv) {
    const char* mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "null")) {  // a real invalid memory access
        volatile int* texture = nullptr;
        return *texture;
    }
    if (!strcmp(mode, "alloc")) {  // 1 GiB under the RLIMIT_AS the test sets: std::bad_alloc
        std::vector<char> pixels(size_t(1) << 30, 1);
        return pixels[12345];
    }
    if (!strcmp(mode, "devfull")) {  // a real ENOSPC, reported the way C tools do
        FILE* out = fopen("/dev/full", "wb");
        static char block[4096];
        if (!out || fwrite(block, 1, sizeof block, out) != sizeof block || fflush(out) != 0) {
            perror("toktx: cannot write /dev/full");
            return 1;
        }
        return 0;
    }
    if (!strcmp(mode, "overflow")) {  // AddressSanitizer builds: a heap buffer overflow
        int* levels = new int[4];
        levels[atoi("4")] = 1;
        int level = levels[4];
        delete[] levels;
        return level;
    }
    if (!strcmp(mode, "ub")) {  // UndefinedBehaviorSanitizer builds: signed overflow
        int size = 2147483647;
        size += atoi("1");
        return size;
    }
    throw std::runtime_error("shard manifest missing");
}
