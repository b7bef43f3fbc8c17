"""Drive a lifecycle node without ros2cli: `python -m parrot_bringup.lifecycle_ctl NODE TRANSITION`.

TRANSITION: configure | activate | deactivate | cleanup | shutdown | get (print the state).
The same as `ros2 lifecycle set /NODE TRANSITION` on a full ROS 2 install; exit code 0 when
the node accepted the transition, 1 otherwise (or when the node did not answer in time).
"""

from __future__ import annotations

import argparse
import sys

TRANSITIONS = ("configure", "activate", "deactivate", "cleanup", "shutdown")


class LifecycleCtlError(RuntimeError):
    pass


def _call(node, srv_type, name, request, timeout_s):
    import rclpy
    client = node.create_client(srv_type, name)
    try:
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise LifecycleCtlError(f"service {name} not available (is the node running?)")
        future = client.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=timeout_s)
        if future.result() is None:
            raise LifecycleCtlError(f"{name}: no answer within {timeout_s} s")
        return future.result()
    finally:
        node.destroy_client(client)


def get_state(node, target: str, timeout_s: float = 5.0) -> str:
    from lifecycle_msgs.srv import GetState
    return _call(node, GetState, f"/{target.lstrip('/')}/get_state", GetState.Request(),
                 timeout_s).current_state.label


def change_state(node, target: str, transition: str, timeout_s: float = 5.0) -> bool:
    """Ask lifecycle node `target` for `transition` from rclpy node `node`; True if accepted."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    ids = {"configure": Transition.TRANSITION_CONFIGURE,
           "activate": Transition.TRANSITION_ACTIVATE,
           "deactivate": Transition.TRANSITION_DEACTIVATE,
           "cleanup": Transition.TRANSITION_CLEANUP}
    if transition == "shutdown":
        state = get_state(node, target, timeout_s)
        tid = {"unconfigured": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
               "inactive": Transition.TRANSITION_INACTIVE_SHUTDOWN,
               "active": Transition.TRANSITION_ACTIVE_SHUTDOWN}.get(state)
        if tid is None:
            raise LifecycleCtlError(f"cannot shut down from state {state!r}")
    elif transition in ids:
        tid = ids[transition]
    else:
        raise LifecycleCtlError(f"transition must be one of {TRANSITIONS}, got {transition!r}")
    req = ChangeState.Request()
    req.transition.id = tid
    return bool(_call(node, ChangeState, f"/{target.lstrip('/')}/change_state", req,
                      timeout_s).success)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m parrot_bringup.lifecycle_ctl",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("node", help="lifecycle node name, e.g. hardware_bridge")
    ap.add_argument("transition", choices=[*TRANSITIONS, "get"])
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args(argv)
    import rclpy
    rclpy.init()
    node = rclpy.create_node("parrot_lifecycle_ctl")
    try:
        if args.transition == "get":
            print(get_state(node, args.node, args.timeout))
            return 0
        ok = change_state(node, args.node, args.transition, args.timeout)
        print(f"{args.node}: {args.transition} {'ok' if ok else 'REFUSED'} "
              f"(now {get_state(node, args.node, args.timeout)})")
        return 0 if ok else 1
    except LifecycleCtlError as e:
        print(f"lifecycle_ctl: error: {e}", file=sys.stderr)
        return 1
    finally:
        node.destroy_node()
        rclpy.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
