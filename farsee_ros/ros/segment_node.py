# Copyright 2026 The farsee_ros Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
The segment_node executable: run SegmentNode until Ctrl-C or shutdown, quietly.

Everything heavy (rclpy, the node, PyTorch) is imported inside main(), so a Ctrl-C at any
moment, even while the imports load (it is then honoured when they are done), ends the process
with exit code 0 and no traceback, as `ros2 launch` users expect. A start-up problem is one
error line and exit code 1, and so is a device error that would fail every later frame (a
sticky CUDA error: `respawn=True` in a launch file then restarts the node). Before rclpy
starts, the node's own Fast DDS profile is chosen (fastdds.py).
"""

import os
import signal
import sys
from typing import List, Optional


def main(args: Optional[List[str]] = None) -> int:
    """
    Run the node until SIGINT / shutdown; exit 0, or 1 with one error line.

    After a SIGINT the process leaves with os._exit once the node and rclpy are closed. A
    Ctrl-C that lands while an extension runs Python code through PyRun_String (pybind11's
    exec, during PyTorch's import in the model load, say) sets CPython's "unhandled
    KeyboardInterrupt" flag even though main() handles it, and the interpreter would then end
    itself with SIGINT at exit: exit code -2, nothing printed (test_node_shutdown reproduces
    it).
    """
    code = _run(args)
    if _SIGINT_SEEN:
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """Flush Python's and C's standard streams (rcutils logs through C's), then os._exit."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        import ctypes
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass
    os._exit(code)


def _run(args: Optional[List[str]]) -> int:
    # No KeyboardInterrupt inside the imports: one raised inside an extension's own Python
    # code (pybind11 exec) makes CPython kill the process with SIGINT at exit even after it
    # was caught (exit -2). A Ctrl-C meanwhile is noted, and honoured once they are done.
    # A process started as a background job of a non-interactive shell (`cmd &`, CI scripts)
    # inherits SIGINT ignored; rclpy.init installs its own handler whatever was inherited, so
    # Ctrl-C is honoured from the start here too, not only once rclpy runs.
    # After the imports, only the first SIGINT raises KeyboardInterrupt: a terminal's Ctrl-C
    # under `ros2 launch` signals the node twice (the terminal's to the process group, then
    # launch's own), and the second must not interrupt the shutdown the first began.
    interrupted = []
    inherited = signal.getsignal(signal.SIGINT)
    after = _first_sigint_only if inherited in (signal.SIG_IGN, signal.default_int_handler) \
        else inherited
    if after is _first_sigint_only:
        signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    try:
        import rclpy
        from rclpy.executors import ExternalShutdownException

        from .fastdds import node_profile, PROFILE_VARIABLE
        from .declare import ConfigError
        from .node import SegmentNode
        from .parameters import NODE_NAME
    except BaseException:
        signal.signal(signal.SIGINT, after)
        raise
    if interrupted:   # nothing started, nothing to close: leave without the interpreter's
        _exit_now(0)      # finalization, where a loaded CI run twice saw this path exit -2
    node = None
    try:
        # From here a Ctrl-C raises KeyboardInterrupt (once), handled below as a shutdown;
        # set inside this block so that no KeyboardInterrupt can come between the two.
        signal.signal(signal.SIGINT, after)
        if interrupted:   # one came since the check above
            raise KeyboardInterrupt
        profile, profile_note = node_profile(os.environ)
        if profile:   # read by Fast DDS when rclpy.init creates this process's participant
            os.environ[PROFILE_VARIABLE] = profile
        rclpy.init(args=args)
        rclpy.logging.get_logger(NODE_NAME).info(profile_note)
        node = SegmentNode()
        rclpy.spin(node)
    except ConfigError as exc:
        if not rclpy.ok():   # a Ctrl-C shut the context down while parameters were read
            return 0
        rclpy.logging.get_logger(NODE_NAME).error(str(exc))
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:  # noqa: B902 - whatever rcl raised once the context was gone
        # A Ctrl-C after rclpy.init shuts the context down from rclpy's own signal handler;
        # the node's constructor then fails on the invalid context (RCLError). And a
        # KeyboardInterrupt raised while rclpy converts a message it takes comes out as
        # pybind11's RuntimeError ('Unable to convert call argument'), possibly before the
        # context is shut down. Both are a shutdown, not an error; anything else raised while
        # the context is valid and no SIGINT came is.
        if rclpy.ok() and not _SIGINT_SEEN:
            raise
    finally:
        if node is not None:
            node.close()
        rclpy.try_shutdown()
    # The node shut itself down on an error every later frame would repeat (logged).
    return 1 if node is not None and node.fatal_error else 0


_SIGINT_SEEN: List[bool] = []   # the first SIGINT after the imports arrived


def _first_sigint_only(signum, frame) -> None:
    """SIGINT handler: KeyboardInterrupt the first time (rclpy chains here), then nothing."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _SIGINT_SEEN.append(True)
    raise KeyboardInterrupt


if __name__ == '__main__':
    sys.exit(main())
