"""Run an image's code in a sandbox: runc under a runtime spec advisor writes.

The whole API (everything else here is how it works)::

    bundle = unpack("oci:dir:tag")            # skopeo + umoci; Bundle, removed by bundle.remove()
    done = run(bundle, ["python3", "-c", "print(1)"], policy=Policy())  # -> Completed
    with serve(bundle, port=8080) as served:  # the image's entrypoint, PORT=8080
        conn = served.address.http()          # http.client connection inside its netns
    Container(bundle, argv, stdin=..., stdout=...)  # a long-lived process (bench probes)

Each run gets its own PID, mount, IPC, UTS and network namespaces (only ``lo``), a user
namespace where the kernel allows one, the image's user, Docker's default capabilities
minus NET_RAW and MKNOD (none for a non-root user), ``noNewPrivileges``, a read-only root
with a tmpfs ``/tmp``, Docker's masked ``/proc`` paths, no host devices beyond
null/zero/full/random/urandom/tty, Docker's default seccomp profile, and memory + pids
limits (cgroups where writable, else rlimits: ``Completed.limits`` says which). Clients
reach a served port by joining the sandbox's network namespace (``Address``), never
through the host's network. Needs root, runc, skopeo and umoci; without runc every entry
point raises ``MissingDependencyError`` (exit 7) naming the package.
"""

from advisor.sandbox.bundle import Bundle, unpack, userns_available
from advisor.sandbox.container import Container, runc
from advisor.sandbox.netns import Address
from advisor.sandbox.policy import Bind, Policy
from advisor.sandbox.runtime import Completed, Served, run, serve

__all__ = [
    "Address", "Bind", "Bundle", "Completed", "Container", "Policy", "Served",
    "run", "runc", "serve", "unpack", "userns_available",
]  # fmt: skip
