"""What each collective backend needs from the environment: one registry entry per device.

`msrun` exports the dynamic-networking variables (MS_ROLE, MS_SCHED_HOST, ...) to every process it
starts; a backend may additionally need visible-device lists, a rank table (HCCL's older launch style)
or tuning knobs. `launch_environment` builds the variables the launcher adds, and
`missing_worker_environment` tells a process started without `msrun` what is absent, before
`mindspore.communication.init()` would wait for a scheduler that does not exist.
"""
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from runtime.registry import registrar
from runtime.mindspore_import import GLOG_LEVEL_VAR, QUIET_GLOG_LEVEL, is_verbose

from .errors import DistributedError

# Exported by msrun to the scheduler and every worker; MindSpore's dynamic networking reads them.
MSRUN_ENV = ("MS_ROLE", "MS_SCHED_HOST", "MS_SCHED_PORT", "MS_WORKER_NUM")
# Exported by msrun to workers (RANK_ID and MS_NODE_ID too, unless ranks are assigned automatically).
MSRUN_WORKER_ENV = ("DEVICE_ID", "RANK_SIZE")
ROLE_WORKER = "MS_WORKER"
ROLE_SCHEDULER = "MS_SCHED"


@dataclass(frozen=True)
class BackendSpec:
    device: str                          # toolkit device name
    target: str                          # MindSpore device_target
    backend: str                         # mindspore.communication.init(backend_name)
    world_group: str                     # the collective world group MindSpore creates
    visible_devices_var: Optional[str]   # variable that restricts which devices a host exposes
    rank_table_var: Optional[str]        # variable naming a rank-table file (HCCL only)
    knobs: Dict[str, str] = field(default_factory=dict)   # optional tuning variables -> why


BACKENDS: Dict[str, BackendSpec] = {}


def register(spec):
    return registrar(BACKENDS, "collective backend")(spec.device)(spec)


register(BackendSpec(
    "cpu", "CPU", "mccl", "mccl_world_group", None, None,
    {"GLOG_v": "MindSpore log level in each worker's log (3 = errors only)"}))
register(BackendSpec(
    "gpu", "GPU", "nccl", "nccl_world_group", "CUDA_VISIBLE_DEVICES", None,
    {"NCCL_SOCKET_IFNAME": "network interface NCCL uses between hosts",
     "NCCL_DEBUG": "NCCL diagnostics (INFO) when a multi-host run stalls",
     "GLOG_v": "MindSpore log level in each worker's log (3 = errors only)"}))
register(BackendSpec(
    "ascend", "Ascend", "hccl", "hccl_world_group", "ASCEND_RT_VISIBLE_DEVICES", "RANK_TABLE_FILE",
    {"HCCL_CONNECT_TIMEOUT": "seconds HCCL waits for peers while building links",
     "HCCL_EXEC_TIMEOUT": "seconds a collective may wait before HCCL aborts",
     "GLOG_v": "MindSpore log level in each worker's log (3 = errors only)"}))


def backend_for(device) -> BackendSpec:
    spec = BACKENDS.get(str(device).lower())
    if spec is None:
        raise DistributedError(f"no collective backend for device {device!r}; known devices: "
                               f"{', '.join(sorted(BACKENDS))}")
    return spec


def _device_list(devices) -> Tuple[int, ...]:
    if isinstance(devices, str):
        devices = [d for d in devices.replace(" ", "").split(",") if d]
    ids = []
    for d in devices:
        try:
            ids.append(int(d))
        except (TypeError, ValueError):
            raise DistributedError(f"visible device id {d!r} is not an integer") from None
    if any(i < 0 for i in ids):
        raise DistributedError(f"visible device ids must be >= 0, got {ids}")
    if len(set(ids)) != len(ids):
        raise DistributedError(f"visible device ids repeat: {ids}")
    return tuple(ids)


def launch_environment(device, local_workers, visible_devices=None, rank_table=None, extra=None):
    """Variables the launcher adds to msrun's environment for `local_workers` workers on this host.

    msrun gives local worker i DEVICE_ID=i, so on GPU/Ascend the host needs at least `local_workers`
    visible devices; `visible_devices` picks which ones (e.g. "4,5,6,7").
    """
    spec = backend_for(device)
    # Workers as quiet as runtime.mindspore_import makes this process (MindSpore's warnings with -v).
    env = {} if is_verbose() else {GLOG_LEVEL_VAR: QUIET_GLOG_LEVEL}
    if visible_devices is not None:
        if spec.visible_devices_var is None:
            raise DistributedError(f"--visible-devices has no meaning on {spec.device}: the {spec.backend} "
                                   f"backend runs every worker on the host CPU")
        ids = _device_list(visible_devices)
        if len(ids) < local_workers:
            raise DistributedError(f"{local_workers} local worker(s) need {local_workers} visible "
                                   f"{spec.device} device(s), got {len(ids)}: {list(ids)}")
        env[spec.visible_devices_var] = ",".join(str(i) for i in ids)
    if rank_table is not None:
        if spec.rank_table_var is None:
            raise DistributedError(f"a rank table is an HCCL (Ascend) file; the {spec.backend} backend of "
                                   f"{spec.device} does not read one")
        env[spec.rank_table_var] = str(rank_table)
    for key, value in (extra or {}).items():
        env[str(key)] = str(value)
    return env


def missing_worker_environment(environ):
    """Names of msrun variables absent from `environ` (empty when started by msrun as a worker)."""
    missing = [k for k in MSRUN_ENV if not environ.get(k)]
    if environ.get("MS_ROLE") == ROLE_WORKER:
        missing += [k for k in MSRUN_WORKER_ENV if not environ.get(k)]
    return missing
