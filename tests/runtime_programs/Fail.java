// Fails the way its first argument says, for tests/diagnostics/test_runtimes.py.
import java.io.FileOutputStream;
import java.util.ArrayList;

public class Fail {
    static int depth(int n) {
        return depth(n + 1) + 1;
    }

    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "devfull": // a real ENOSPC from the kernel
                try (FileOutputStream out = new FileOutputStream("/dev/full")) {
                    out.write(new byte[4096]);
                }
                break;
            case "heap": // past -Xmx
                ArrayList<long[]> hoard = new ArrayList<>();
                while (true) hoard.add(new long[1 << 20]);
            case "stack": // unbounded recursion
                depth(0);
                break;
            default:
                throw new IllegalStateException("shard manifest missing");
        }
    }
}
