"""The ctypes mirrors against the loaded library's own layout, and what a mismatch does."""

import ctypes
import unittest

import runway_worker as rw
from runway_worker import _lib


class LayoutTest(unittest.TestCase):
    def test_mirrors_match_the_library(self):
        lib = rw.library()
        self.assertEqual(_lib.check_layout(lib), set())
        # The stated sizes of <runway/worker.h> (LP64).
        self.assertEqual(ctypes.sizeof(_lib.Block), 80)
        self.assertEqual(ctypes.sizeof(_lib.Event), 16)
        self.assertEqual(ctypes.sizeof(_lib.ParamInfo), 40)
        self.assertEqual(ctypes.sizeof(_lib.Options), 56)
        self.assertEqual(ctypes.sizeof(_lib.WorkerInfo), 40)
        self.assertEqual(_lib.ParamInfo.default.offset, 24)
        self.assertEqual(lib.rw_worker_abi_offset(b"rw_param_info.def"), 24)

    def test_a_mismatch_is_refused_with_a_message(self):
        real = rw.library()

        class Shifted:
            _name = "librunway-worker.so.1 (shifted)"

            @staticmethod
            def rw_worker_abi_offset(name):
                off = real.rw_worker_abi_offset(name)
                return off + 8 if name == b"rw_block.position" else off

        with self.assertRaises(rw.LayoutError) as cm:
            _lib.check_layout(Shifted)
        self.assertIn("rw_block.position", str(cm.exception))

        class Grown:
            _name = "librunway-worker.so.9"

            @staticmethod
            def rw_worker_abi_offset(name):
                return 96 if name == b"rw_block" else real.rw_worker_abi_offset(name)

        with self.assertRaises(rw.LayoutError) as cm:
            _lib.check_layout(Grown)
        self.assertIn("rw_block is 96 bytes", str(cm.exception))

    def test_an_older_library_info_is_read_as_far_as_it_goes(self):
        real = rw.library()

        class Older:
            _name = "librunway-worker.so.1 (older)"

            @staticmethod
            def rw_worker_abi_offset(name):
                if name in (b"rw_worker_info.period", b"rw_worker_info.wake_frames"):
                    return -1
                return real.rw_worker_abi_offset(name)

        self.assertEqual(_lib.check_layout(Older),
                         {"rw_worker_info.period", "rw_worker_info.wake_frames"})


if __name__ == "__main__":
    unittest.main()
