"""pilot exec on a Dask pilot: run commands as Dask tasks pinned to the workers of given nodes.

Invoked by pilot-core as `<python> dask_exec.py SPEC.json` with the Dask pilot's own Python. SPEC holds the
scheduler address, a timeout, where to write the results, and one entry per task: the node address it must run
on, the copy's index on that node, argv, extra environment, working directory and log file. Each task starts its
command in a new session with output appended to its log, waits for it (up to the timeout) and returns its exit
status; every running command is registered on its worker so that a SIGTERM/SIGINT to this driver ends them all
(SIGTERM to their process groups, SIGKILL after 5 s). Results: a JSON list in the same order as the tasks,
{"code": int or null, "signal": int or null, "worker": address, "error": text or null}.
"""
import json
import os
import signal
import sys
import time

from distributed import Client, get_worker


def run_task(key, argv, env, cwd, log, timeout_s):
    import subprocess

    worker = get_worker()
    running = worker.__dict__.setdefault("_pilot_tasks", {})
    full_env = dict(os.environ)
    full_env.update(env)
    with open(log, "ab") as out:
        try:
            p = subprocess.Popen(
                argv,
                env=full_env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            return {"code": None, "signal": None, "worker": worker.address, "error": str(e)}
        running[key] = p
        try:
            code = p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _end(p)
            code = p.returncode
            return {"code": None, "signal": None, "worker": worker.address, "error": "timed out"}
        finally:
            running.pop(key, None)
    if code < 0:
        return {"code": None, "signal": -code, "worker": worker.address, "error": None}
    return {"code": code, "signal": None, "worker": worker.address, "error": None}


def _end(p):
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except OSError:
        return
    t0 = time.time()
    while p.poll() is None and time.time() - t0 < 5:
        time.sleep(0.05)
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        p.wait()


def end_all(dask_worker):
    for p in list(dask_worker.__dict__.get("_pilot_tasks", {}).values()):
        _end(p)
    return True


def main():
    spec = json.load(open(sys.argv[1]))
    client = Client(spec["scheduler"], timeout=30)
    workers = client.scheduler_info(n_workers=-1)["workers"]
    by_host = {}
    for addr, w in sorted(workers.items()):
        by_host.setdefault(w["host"], []).append(addr)

    def stop(signum, frame):
        try:
            client.run(end_all, workers=list(workers))
        finally:
            os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    futures = []
    for i, t in enumerate(spec["tasks"]):
        on_host = by_host.get(t["host"])
        if not on_host:
            raise SystemExit(f"no Dask worker on {t['host']} (workers: {sorted(by_host)})")
        target = on_host[t["local_index"] % len(on_host)]
        futures.append(
            client.submit(
                run_task,
                f"task-{i}",
                t["argv"],
                t["env"],
                t["cwd"],
                t["log"],
                spec["timeout_s"],
                key=f"pilot-exec-{os.getpid()}-{i}",
                workers=[target],
                allow_other_workers=False,
                pure=False,
            )
        )
    results = client.gather(futures)
    with open(spec["results"] + ".tmp", "w") as f:
        json.dump(results, f)
    os.replace(spec["results"] + ".tmp", spec["results"])
    client.close()


if __name__ == "__main__":
    main()
