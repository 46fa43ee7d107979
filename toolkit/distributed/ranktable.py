"""HCCL rank tables: generated from a host/device description, validated before anything starts.

Ascend's older launch style (the ModelZoo's `run_distribute_train.sh`) reads a rank table naming every
NPU of the cluster; msrun can pass one on (`--rank_table_file`). The format follows the ModelZoo's
`hccl_tools.py` output, version 1.0 (all values strings):

    {"version": "1.0", "server_count": "2", "status": "completed",
     "server_list": [{"server_id": "10.0.0.1", "host_nic_ip": "reserve",
                      "device": [{"device_id": "0", "device_ip": "192.168.100.101", "rank_id": "0"}, ...]},
                     ...]}

Rank ids are assigned host by host in the order given, devices in the order given, so host k's
devices are ranks k*n .. k*n+n-1 as msrun's `--node_rank k` expects with n local workers.
"""
import ipaddress
import json
import os
from dataclasses import dataclass
from typing import Dict, List, Tuple

from runtime.atomic import atomic_write_text

from .errors import DistributedError

VERSION = "1.0"
MAX_DEVICES_PER_HOST = 16   # Atlas A3 servers carry 16 NPUs; 8 on the 800T A2


@dataclass(frozen=True)
class Host:
    server_id: str                     # the host's IP address
    devices: Tuple[Tuple[int, str], ...]   # (device_id, device_ip) in rank order


def _ip(value, what):
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise DistributedError(f"{what} {value!r} is not an IP address") from None


def _device_id(value, where):
    try:
        i = int(str(value).strip())
    except ValueError:
        raise DistributedError(f"{where}: device id {value!r} is not an integer") from None
    if not 0 <= i < MAX_DEVICES_PER_HOST:
        raise DistributedError(f"{where}: device id {i} is outside 0..{MAX_DEVICES_PER_HOST - 1}")
    return i


def parse_host_spec(spec) -> Host:
    """`SERVER_IP:DEV=DEV_IP,DEV=DEV_IP...`, e.g. `10.0.0.1:0=192.168.100.101,1=192.168.101.101`."""
    server, sep, devices = str(spec).partition(":")
    if not sep or not devices.strip():
        raise DistributedError(f"host {spec!r}: expected SERVER_IP:DEVICE_ID=DEVICE_IP[,...]")
    server_id = _ip(server, f"host {spec!r}: server address")
    pairs = []
    for item in devices.split(","):
        dev, eq, ip = item.partition("=")
        if not eq:
            raise DistributedError(f"host {server_id}: device entry {item!r} is not DEVICE_ID=DEVICE_IP")
        pairs.append((_device_id(dev, f"host {server_id}"), _ip(ip, f"host {server_id}: device ip")))
    return Host(server_id, tuple(pairs))


def read_hccn_conf(path) -> Dict[int, str]:
    """Device ips from an Ascend `/etc/hccn.conf` (`address_N=IP` lines; other lines ignored)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read(1 << 20).splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DistributedError(f"{path}: cannot read hccn.conf ({e})") from None
    ips = {}
    for n, line in enumerate(lines, 1):
        key, eq, value = line.strip().partition("=")
        if eq and key.startswith("address_"):
            dev = _device_id(key[len("address_"):], f"{path}:{n}")
            if dev in ips:
                raise DistributedError(f"{path}:{n}: device {dev} listed twice")
            ips[dev] = _ip(value, f"{path}:{n}: device ip")
    if not ips:
        raise DistributedError(f"{path}: no address_N=IP lines found")
    return ips


def hosts_from_description(data, source="description") -> List[Host]:
    """`{"hosts": [{"server_id": IP, "devices": [{"device_id": 0, "device_ip": IP}, ...]}, ...]}`."""
    if not isinstance(data, dict) or not isinstance(data.get("hosts"), list):
        raise DistributedError(f"{source}: expected an object with a 'hosts' list")
    hosts = []
    for k, entry in enumerate(data["hosts"]):
        where = f"{source}: hosts[{k}]"
        if not isinstance(entry, dict) or "server_id" not in entry or not isinstance(entry.get("devices"), list):
            raise DistributedError(f"{where}: expected {{'server_id': IP, 'devices': [...]}}")
        pairs = []
        for j, dev in enumerate(entry["devices"]):
            if not isinstance(dev, dict) or not {"device_id", "device_ip"} <= set(dev):
                raise DistributedError(f"{where}.devices[{j}]: expected device_id and device_ip")
            pairs.append((_device_id(dev["device_id"], where), _ip(dev["device_ip"], f"{where}: device ip")))
        hosts.append(Host(_ip(entry["server_id"], f"{where}: server_id"), tuple(pairs)))
    return hosts


def load_description(path) -> List[Host]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.loads(f.read(1 << 22))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DistributedError(f"{path}: cannot read host description ({e})") from None
    return hosts_from_description(data, str(path))


def validate_hosts(hosts):
    """Raise DistributedError for anything HCCL or msrun would reject later, all problems at once."""
    problems = []
    if not hosts:
        problems.append("no hosts given")
    seen_servers, seen_ips = {}, {}
    for host in hosts:
        if host.server_id in seen_servers:
            problems.append(f"server {host.server_id} is listed twice")
        seen_servers[host.server_id] = True
        if not host.devices:
            problems.append(f"server {host.server_id} has no devices")
        ids = [d for d, _ in host.devices]
        for dup in sorted({d for d in ids if ids.count(d) > 1}):
            problems.append(f"server {host.server_id}: device id {dup} is listed twice")
        for dev, ip in host.devices:
            if ip in seen_ips and seen_ips[ip] != (host.server_id, dev):
                other = seen_ips[ip]
                problems.append(f"device ip {ip} is used by server {other[0]} device {other[1]} and by "
                                f"server {host.server_id} device {dev}")
            seen_ips.setdefault(ip, (host.server_id, dev))
    counts = {len(h.devices) for h in hosts}
    if len(counts) > 1:
        listing = ", ".join(f"{h.server_id}: {len(h.devices)}" for h in hosts)
        problems.append(f"every server must use the same number of devices (msrun starts the same "
                        f"local worker count on each node); got {listing}")
    if problems:
        raise DistributedError("invalid rank-table description: " + "; ".join(problems))


def build_rank_table(hosts) -> dict:
    """The rank table for `hosts` (validated), ranks numbered host by host."""
    hosts = list(hosts)
    validate_hosts(hosts)
    rank = 0
    servers = []
    for host in hosts:
        devices = []
        for dev, ip in host.devices:
            devices.append({"device_id": str(dev), "device_ip": ip, "rank_id": str(rank)})
            rank += 1
        servers.append({"server_id": host.server_id, "device": devices, "host_nic_ip": "reserve"})
    return {"version": VERSION, "server_count": str(len(servers)), "server_list": servers,
            "status": "completed"}


def validate_rank_table(table, source="rank table") -> int:
    """Check an existing table (ours or hand-written); returns the rank count."""
    if not isinstance(table, dict) or not isinstance(table.get("server_list"), list):
        raise DistributedError(f"{source}: expected an object with a 'server_list' list")
    try:
        declared = int(table.get("server_count", -1))
    except (TypeError, ValueError):
        declared = -1
    if declared != len(table["server_list"]):
        raise DistributedError(f"{source}: server_count {table.get('server_count')!r} does not match the "
                               f"{len(table['server_list'])} entries of server_list")
    if table.get("status") != "completed":
        raise DistributedError(f"{source}: status is {table.get('status')!r}, expected 'completed'")
    hosts, ranks = [], []
    for k, server in enumerate(table["server_list"]):
        if not isinstance(server, dict) or not isinstance(server.get("device"), list):
            raise DistributedError(f"{source}: server_list[{k}] has no 'device' list")
        pairs = []
        for j, dev in enumerate(server["device"]):
            where = f"{source}: server_list[{k}].device[{j}]"
            if not isinstance(dev, dict) or not {"device_id", "device_ip", "rank_id"} <= set(dev):
                raise DistributedError(f"{where}: needs device_id, device_ip and rank_id")
            pairs.append((_device_id(dev["device_id"], where), _ip(dev["device_ip"], f"{where}: device_ip")))
            try:
                ranks.append(int(dev["rank_id"]))
            except (TypeError, ValueError):
                raise DistributedError(f"{where}: rank_id {dev['rank_id']!r} is not an integer") from None
        hosts.append(Host(_ip(server.get("server_id"), f"{source}: server_list[{k}].server_id"), tuple(pairs)))
    validate_hosts(hosts)
    if sorted(ranks) != list(range(len(ranks))):
        raise DistributedError(f"{source}: rank ids must be 0..{len(ranks) - 1} each once, got {sorted(ranks)}")
    return len(ranks)


def read_rank_table(path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            table = json.loads(f.read(1 << 22))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DistributedError(f"{path}: cannot read rank table ({e})") from None
    validate_rank_table(table, str(path))
    return table


def write_rank_table(hosts, path) -> dict:
    """Build, validate and atomically write the table for `hosts`; returns it."""
    table = build_rank_table(hosts)
    atomic_write_text(os.fspath(path), json.dumps(table, indent=4) + "\n")
    return table
