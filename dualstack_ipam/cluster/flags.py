"""kube-controller-manager's command-line flags, as :meth:`ClusterConfig.from_flags` reads them.

This module knows the flag names and how their values are spelled: it
reads ``argv`` (``--flag=value`` or ``--flag value``, values optionally in
one pair of quotes), parses the booleans, the mask sizes and the
``IPv6DualStack`` feature gate, and applies the rules that involve only
flags (which mask flag goes with which cluster, what the gate forbids).
The CIDR values themselves are left to :mod:`dualstack_ipam.cluster.config`, which
validates them with the same rules whether they come from flags or from
Python.

Errors are :class:`~dualstack_ipam.errors.InvalidConfigError`, worded as
kube-controller-manager and pflag word them where they refuse the same
thing, and quoting the bad value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from dualstack_ipam.errors import InvalidConfigError
from dualstack_ipam.net import IPFamily

__all__ = [
    "CLUSTER_FLAG",
    "FAMILY_MASK_FLAG",
    "MASK_FLAG",
    "SERVICE_FLAG",
    "check_dual_stack",
    "dual_stack_gate",
    "mask_sizes",
    "parse_bool",
    "parse_mask",
    "read_cluster_flags",
    "read_flags",
    "render_flags",
    "unquote",
]

CLUSTER_FLAG = "--cluster-cidr"
SERVICE_FLAG = "--service-cluster-ip-range"
MASK_FLAG = "--node-cidr-mask-size"
FAMILY_MASK_FLAG: Mapping[IPFamily, str] = {
    IPFamily.IPv4: "--node-cidr-mask-size-ipv4",
    IPFamily.IPv6: "--node-cidr-mask-size-ipv6",
}
_KNOWN_FLAGS = frozenset(
    {
        "cluster-cidr",
        "service-cluster-ip-range",
        "node-cidr-mask-size",
        "node-cidr-mask-size-ipv4",
        "node-cidr-mask-size-ipv6",
        "allocate-node-cidrs",
        "feature-gates",
    }
)
_BOOL_FLAGS = frozenset({"allocate-node-cidrs"})
# The spellings Go's strconv.ParseBool accepts, which is what pflag uses.
_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})


def read_cluster_flags(
    argv: Sequence[str], *, ignore_unknown: bool = False
) -> tuple[dict[str, str], bool]:
    """The flag values of ``argv`` (by name, without ``--``) and the dual-stack gate.

    Checks what needs no CIDR: ``--cluster-cidr`` is present, the
    ``--allocate-node-cidrs`` value is a boolean (then ignored), and the
    ``--feature-gates`` value parses. ``ignore_unknown`` as in :func:`read_flags`.

    Raises:
        InvalidConfigError: a rule above, or one of :func:`read_flags`.

    Complexity:
        O(len(argv)).

    >>> read_cluster_flags(["--cluster-cidr=10.0.0.0/8", "--v=2"], ignore_unknown=True)
    ({'cluster-cidr': '10.0.0.0/8'}, True)
    """
    values = read_flags(argv, ignore_unknown=ignore_unknown)
    if "cluster-cidr" not in values:
        raise InvalidConfigError(f"{CLUSTER_FLAG} is required", value=list(argv))
    if "allocate-node-cidrs" in values:
        parse_bool(values["allocate-node-cidrs"], "--allocate-node-cidrs")
    return values, dual_stack_gate(values.get("feature-gates", ""))


def unquote(value: str) -> str:
    """``value`` without one pair of enclosing quotes, if it has them.

    Complexity:
        O(len(value)).

    >>> unquote('"IPv6DualStack=true"'), unquote("'a"), unquote("b")
    ('IPv6DualStack=true', "'a", 'b')
    """
    # The seed writes --feature-gates="IPv6DualStack=true": a shell would eat
    # the quotes, a YAML manifest or a copied line does not.
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def read_flags(argv: Sequence[str], *, ignore_unknown: bool = False) -> dict[str, str]:
    """The value of each flag in ``argv``, by name without ``--``; the last one wins.

    Args:
        argv: the arguments, without the program name.
        ignore_unknown: skip the flags this library does not read, so that a
            whole kube-controller-manager command line can be given. A
            skipped flag in ``--flag value`` form takes the next token as its
            value when that token does not start with ``--`` (so a bare
            boolean followed by another flag loses nothing).

    Raises:
        InvalidConfigError: ``argv`` is not a sequence of strings, a stray
            argument, an unknown flag (unless ``ignore_unknown``), a missing
            value.

    Complexity:
        O(len(argv)).

    >>> read_flags(["--cluster-cidr", "10.0.0.0/8", "--node-cidr-mask-size=20"])
    {'cluster-cidr': '10.0.0.0/8', 'node-cidr-mask-size': '20'}
    >>> read_flags(["--v", "2", "--leader-elect", "--cluster-cidr=fd00::/48"], ignore_unknown=True)
    {'cluster-cidr': 'fd00::/48'}
    """
    if isinstance(argv, str) or not isinstance(argv, Sequence):
        raise InvalidConfigError(f"flags must be a sequence of strings, got {argv!r}", value=argv)
    if not isinstance(ignore_unknown, bool):
        raise InvalidConfigError(
            f"ignore_unknown must be a bool, got {ignore_unknown!r}", value=ignore_unknown
        )
    values: dict[str, str] = {}
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if not isinstance(arg, str):
            raise InvalidConfigError(f"flag {arg!r} is not a string", value=arg)
        if not arg.startswith("--") or arg == "--":
            raise InvalidConfigError(
                f"unexpected argument {arg!r}: expected --flag=value or --flag value",
                value=arg,
            )
        name, has_value, value = arg[2:].partition("=")
        if name not in _KNOWN_FLAGS:
            if not ignore_unknown:
                raise InvalidConfigError(f"unknown flag: --{name}", value=arg)
            following = argv[index] if index < len(argv) else None
            if not has_value and isinstance(following, str) and not following.startswith("--"):
                index += 1
            continue
        if not has_value:
            following = argv[index] if index < len(argv) else None
            if name in _BOOL_FLAGS:
                value = "true"
                if isinstance(following, str) and following in _TRUE | _FALSE:
                    value, index = following, index + 1
            elif not isinstance(following, str) or following.startswith("--"):
                raise InvalidConfigError(f"flag needs an argument: --{name}", value=arg)
            else:
                value, index = following, index + 1
        values[name] = unquote(value)
    return values


def parse_bool(value: str, flag: str) -> bool:
    """A boolean flag value, spelled as Go's ``strconv.ParseBool`` accepts.

    Raises:
        InvalidConfigError: any other spelling, quoting it and ``flag``.

    Complexity:
        O(1).

    >>> parse_bool("T", "--allocate-node-cidrs"), parse_bool("0", "--allocate-node-cidrs")
    (True, False)
    """
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidConfigError(
        f"invalid argument {value!r} for {flag!r} flag: expected true or false", value=value
    )


def parse_mask(value: str, flag: str) -> int:
    """A mask size: ASCII digits, optionally negative (refused later as too short).

    Raises:
        InvalidConfigError: not an integer of at most four digits (an empty
            value included), quoting it and ``flag``.

    Complexity:
        O(len(value)).

    >>> parse_mask(" 24", "--node-cidr-mask-size")
    24
    """
    text = value.strip()
    digits = text[1:] if text[:1] == "-" else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 4:
        raise InvalidConfigError(
            f"invalid argument {value!r} for {flag!r} flag: not an integer mask size",
            value=value,
        )
    return int(text)


def dual_stack_gate(text: str) -> bool:
    """The ``IPv6DualStack`` value of a ``--feature-gates`` list; absent means true.

    Raises:
        InvalidConfigError: an entry without ``=value``, or a value that is
            not a boolean.

    Complexity:
        O(len(text)).

    >>> dual_stack_gate("IPv6DualStack=false,Other=true"), dual_stack_gate("")
    (False, True)
    """
    enabled = True
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        key, has_value, value = entry.partition("=")
        if not has_value:
            raise InvalidConfigError(
                f"invalid argument {text!r} for '--feature-gates' flag: "
                f"missing bool value for {key.strip()}",
                value=text,
            )
        if key.strip() == "IPv6DualStack":
            enabled = parse_bool(value.strip(), "--feature-gates")
    return enabled


def check_dual_stack(
    values: Mapping[str, str], enabled: bool, clusters: int, services: int
) -> None:
    """Refuse a second cluster CIDR or Service range when ``IPv6DualStack=false``.

    Args:
        values: the flag values by name, as :func:`read_flags` returns them.
        enabled: the ``IPv6DualStack`` gate.
        clusters: how many cluster CIDRs were given.
        services: how many Service ranges were given.

    Raises:
        InvalidConfigError: two of either with the gate off.

    Complexity:
        O(1).

    >>> check_dual_stack({"cluster-cidr": "10.0.0.0/8"}, False, 1, 0)
    """
    if not enabled and clusters > 1:
        raise InvalidConfigError(
            f"len of ClusterCIDRs=={clusters} and dualstack feature is not enabled "
            f"({CLUSTER_FLAG}={values['cluster-cidr']!r} with IPv6DualStack=false)",
            value=values["cluster-cidr"],
        )
    if not enabled and services > 1:
        raise InvalidConfigError(
            f"secondary service cluster-ip range({SERVICE_FLAG}[1]) can only be used if "
            f"IPv6DualStack feature is enabled (got {values['service-cluster-ip-range']!r})",
            value=values["service-cluster-ip-range"],
        )


def mask_sizes(values: Mapping[str, str], families: list[IPFamily]) -> dict[IPFamily, int]:
    """kube-controller-manager's choice of node masks from the three flags.

    Args:
        values: the flag values by name, as :func:`read_flags` returns them.
        families: the cluster's families, primary first (one or two).

    Returns:
        The mask of each family a mask flag sets.

    Raises:
        InvalidConfigError: a malformed mask, ``--node-cidr-mask-size`` with
            a dual-stack cluster or with a per-family flag, a per-family flag
            for a family the cluster lacks, or no cluster family at all.

    Complexity:
        O(1).

    >>> mask_sizes({"node-cidr-mask-size": "20"}, [IPFamily.IPv4])
    {<IPFamily.IPv4: 'IPv4'>: 20}
    """
    if not families:
        # Defect 2: an empty --cluster-cidr value used to reach families[0].
        raise InvalidConfigError(
            f"{CLUSTER_FLAG} is required: a node mask flag needs a cluster CIDR "
            f"(got {CLUSTER_FLAG}={values.get(CLUSTER_FLAG[2:], '')!r})",
            value=values.get(CLUSTER_FLAG[2:], ""),
        )
    per_family = {
        family: parse_mask(values[flag[2:]], flag)
        for family, flag in FAMILY_MASK_FLAG.items()
        if flag[2:] in values
    }
    if MASK_FLAG[2:] in values:
        mask = parse_mask(values[MASK_FLAG[2:]], MASK_FLAG)
        if len(families) > 1:
            raise InvalidConfigError(
                f"usage of {MASK_FLAG} is not allowed with dual-stack clusters "
                f"(got {MASK_FLAG}={values[MASK_FLAG[2:]]!r})",
                value=mask,
            )
        if per_family:
            raise InvalidConfigError(
                f"usage of --node-cidr-mask-size-ipv4 and --node-cidr-mask-size-ipv6 is not "
                f"allowed if {MASK_FLAG} is set (got {MASK_FLAG}={values[MASK_FLAG[2:]]!r})",
                value=mask,
            )
        return {families[0]: mask}
    for family, mask in per_family.items():
        if family not in families:
            raise InvalidConfigError(
                f"usage of {FAMILY_MASK_FLAG[family]} is not allowed for a single-stack "
                f"{families[0]} cluster (got {FAMILY_MASK_FLAG[family]}={mask})",
                value=mask,
            )
    return per_family


def render_flags(
    cluster_cidrs: Iterable[object],
    service_cidrs: Iterable[object],
    masks: Mapping[IPFamily, int],
    *,
    feature_gate: bool,
) -> dict[str, list[str]]:
    """The flags of each component for these CIDRs and node masks (one per cluster family).

    The inverse of :func:`read_flags` for kube-controller-manager: what this
    renders reads back to the same values.

    Complexity:
        O(1) (at most two CIDRs per list).

    >>> render_flags(["10.0.0.0/8"], [], {IPFamily.IPv4: 20}, feature_gate=False)["kube-proxy"]
    ['--proxy-mode=ipvs', '--cluster-cidr=10.0.0.0/8']
    """
    gate = ["--feature-gates=IPv6DualStack=true"] if feature_gate else []
    cluster = f"{CLUSTER_FLAG}={','.join(str(net) for net in cluster_cidrs)}"
    service_text = ",".join(str(net) for net in service_cidrs)
    service = [f"{SERVICE_FLAG}={service_text}"] if service_text else []
    if len(masks) > 1:
        # Always IPv4 then IPv6, whichever family is primary.
        mask_flags = [f"{flag}={masks[family]}" for family, flag in FAMILY_MASK_FLAG.items()]
    else:
        mask_flags = [f"{MASK_FLAG}={mask}" for mask in masks.values()]
    return {
        "kube-controller-manager": [
            *gate,
            "--allocate-node-cidrs=true",
            cluster,
            *service,
            *mask_flags,
        ],
        "kube-apiserver": [*gate, *service],
        "kubelet": [*gate],
        "kube-proxy": [*gate, "--proxy-mode=ipvs", cluster],
    }
