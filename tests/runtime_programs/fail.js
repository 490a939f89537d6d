// Fails the way its first argument says, for tests/diagnostics/test_runtimes.py.
const mode = process.argv[2];
if (mode === "devfull") {
  require("fs").writeFileSync("/dev/full", "x".repeat(4096)); // a real ENOSPC
} else if (mode === "refused") {
  require("net").connect(Number(process.argv[3]), "127.0.0.1"); // a real ECONNREFUSED
} else if (mode === "heap") {
  const hoard = []; // past --max-old-space-size: V8's heap limit
  for (;;) hoard.push(new Array(1e5).fill(Math.random()));
} else {
  throw new Error("shard manifest missing");
}
