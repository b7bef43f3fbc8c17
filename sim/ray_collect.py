"""`parrot collect --ray [ADDRESS]`: scripted collection as Ray tasks, on this machine or a cluster.

Episode indices go out in chunks (`CHUNK` episodes per task); each task runs
`sim.collect.collect_indices` on a Ray worker and returns its episodes, and this process
writes them with one DatasetWriter as the chunks come back. Episode i uses seed S + i as
everywhere, so the dataset is the one `parrot collect` writes without Ray, whatever the
number of workers or nodes. A worker that dies takes only its chunk in flight: Ray runs the
chunk again (`max_retries`), and if it cannot, what came back is written and
`parrot collect --resume` attempts the rest. Workers need this repository importable (the
same checkout or install on every node); the dataset is written where this command runs.
"""

from __future__ import annotations

import sys

CHUNK = 8  # episodes per Ray task: a lost worker loses at most this many


class RayCollectError(RuntimeError):
    """The Ray cluster cannot be reached, or a chunk failed for good."""


def _die_once_for_tests() -> None:
    """The tests kill one worker this way: the first chunk to see the variable exits hard."""
    import os
    marker = os.environ.get("PARROT_TEST_RAY_KILL_ONCE")
    if marker and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Ray waits minutes on an address where nothing listens: ask the socket first."""
    import socket
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms: Ray resolves them itself (and fails fast)
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise RayCollectError(f"cannot reach a Ray cluster at {address!r}: {e}") from None


def connect(address: str, workers: int):
    import ray
    if address != "local":
        _check_reachable(address)
    try:
        if address == "local":
            ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False,
                     ignore_reinit_error=True)
        else:
            ray.init(address=address, log_to_driver=False, ignore_reinit_error=True)
    except Exception as e:  # ConnectionError, RuntimeError: no cluster at that address
        raise RayCollectError(f"cannot reach a Ray cluster at {address!r}: {e}") from None
    return ray


def collect_on_ray(todo: list[int], args: dict, address: str, workers: int,
                   progress: bool = True) -> dict:
    ray = connect(address, workers)
    try:
        return _collect(ray, todo, args, address, progress)
    finally:
        if address == "local":  # the instance we started; a cluster stays up
            ray.shutdown()


def _collect(ray, todo, args, address, progress) -> dict:
    from tqdm import tqdm

    from parrot_core.dataset import DatasetWriter

    context = ray.get_runtime_context()
    print(f"collecting on Ray ({address}, {ray.cluster_resources().get('CPU', 0):g} CPUs, "
          f"node {context.get_node_id()[:8]})", file=sys.stderr)

    @ray.remote(num_cpus=1, max_retries=3)
    def collect_chunk(indices, chunk_args):
        from sim.collect import collect_indices
        _die_once_for_tests()
        return [(task, seed, episode if success else None, success)
                for task, seed, episode, success in collect_indices(indices, chunk_args)]

    writer = DatasetWriter(args["out"], (args["image_size"], args["image_size"]), worker=0,
                           run_id=args["run_id"], camera_view=args["camera_view"])
    pending = [collect_chunk.remote(todo[i:i + CHUNK], args) for i in range(0, len(todo), CHUNK)]
    counts: dict = {}
    failed = []
    with tqdm(total=len(todo), desc=f"collect {args['task']} (ray)", unit="ep",
              disable=not progress, file=sys.stderr) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                results = ray.get(done[0])
            except Exception as e:  # the chunk failed after its retries: the rest goes on
                failed.append(str(e).splitlines()[0])
                continue
            for task, seed, episode, success in results:
                if success:
                    writer.write_episode(episode)
                writer.record_attempt(success, task, seed)
                c = counts.setdefault(task, {"attempted": 0, "kept": 0})
                c["attempted"] += 1
                c["kept"] += int(success)
                bar.update(1)
            bar.set_postfix({k: f"{v['kept']}/{v['attempted']}" for k, v in counts.items()})
    if failed:
        raise RayCollectError(f"{len(failed)} chunk(s) of {CHUNK} episodes failed ({failed[0]}); "
                              f"what came back is written: rerun with --resume for the rest")
    return counts
