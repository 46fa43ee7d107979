"""What machine and software a bench ran on, recorded with every report so numbers can be reproduced."""
import datetime
import os
import platform
import shutil
import subprocess
from importlib import metadata

PACKAGES = ("numpy", "onnxruntime", "onnxruntime-gpu", "onnx", "opencv-python-headless", "mindspore",
            "mindspore-lite", "ms-edge-toolkit")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_names():
    """GPU names from nvidia-smi when it is there (empty list otherwise)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def load_average():
    """1/5/15-minute load averages: how busy the machine was (a shared box makes figures noisy)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def package_versions():
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def collect():
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "gpus": gpu_names(),
        "load_average": load_average(),
        "packages": package_versions(),
    }
