"""`toolkit rank-table`: write an HCCL rank table for Ascend data-parallel training.

    toolkit rank-table -o hccl_2s_16p.json --host 10.0.0.1:0=192.168.100.101,1=192.168.101.101 ...
    toolkit rank-table -o hccl_8p.json --hccn-conf /etc/hccn.conf --server-id 10.0.0.1
    toolkit rank-table -o table.json --description hosts.json

Needs no MindSpore: it only reads the description and writes JSON (atomically).
"""
import click

from toolkit.distributed.errors import DistributedError
from toolkit.distributed.ranktable import Host, load_description, parse_host_spec, read_hccn_conf, write_rank_table


class HostSpec(click.ParamType):
    name = "SERVER_IP:DEV=IP,..."

    def convert(self, value, param, ctx):
        if isinstance(value, Host):
            return value
        try:
            return parse_host_spec(value)
        except DistributedError as e:
            self.fail(str(e), param, ctx)


@click.command("rank-table")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Rank table to write.")
@click.option("--host", "hosts", multiple=True, type=HostSpec(),
              help="One server: SERVER_IP:DEVICE_ID=DEVICE_IP,... (repeat per server, in node-rank order).")
@click.option("--description", type=click.Path(exists=True, dir_okay=False),
              help='JSON {"hosts": [{"server_id": IP, "devices": [{"device_id": 0, "device_ip": IP}]}]}.')
@click.option("--hccn-conf", type=click.Path(exists=True, dir_okay=False),
              help="Read this server's device ips from an Ascend hccn.conf (with --server-id).")
@click.option("--server-id", help="This server's IP address (with --hccn-conf).")
@click.option("--devices", help="With --hccn-conf: device ids to use, e.g. 0,1,2,3 [all listed].")
def rank_table(output, hosts, description, hccn_conf, server_id, devices):
    """Generate and validate an HCCL rank table (ranks numbered server by server)."""
    sources = sum(bool(s) for s in (hosts, description, hccn_conf))
    if sources != 1:
        raise click.UsageError("give exactly one of --host (repeatable), --description or --hccn-conf")
    if bool(hccn_conf) != bool(server_id):
        raise click.UsageError("--hccn-conf and --server-id go together")
    if devices and not hccn_conf:
        raise click.UsageError("--devices selects devices from --hccn-conf")
    if description:
        hosts = load_description(description)
    elif hccn_conf:
        ips = read_hccn_conf(hccn_conf)
        wanted = sorted(ips) if not devices else [d.strip() for d in devices.split(",") if d.strip()]
        try:
            wanted = [int(d) for d in wanted]
        except ValueError:
            raise click.UsageError(f"--devices {devices!r}: expected comma-separated integers") from None
        absent = [d for d in wanted if d not in ips]
        if absent:
            raise click.UsageError(f"--devices {absent} not in {hccn_conf} (it lists {sorted(ips)})")
        hosts = [parse_host_spec(f"{server_id}:" + ",".join(f"{d}={ips[d]}" for d in wanted))]
    table = write_rank_table(list(hosts), output)
    n = sum(len(s["device"]) for s in table["server_list"])
    click.echo(f"wrote {output}: {table['server_count']} server(s), {n} rank(s)")
