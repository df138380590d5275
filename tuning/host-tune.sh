#!/usr/bin/env bash
# Host tuning for ctirouter: moves NIC interrupts off the shard cores, sets the
# network sysctls and the process limits the router needs, and the CPU
# governor. By default it only PRINTS what it would change (current -> planned);
# nothing is written unless --apply is given (then it needs root).
#
#   bash tuning/host-tune.sh --shard-cores 1-3            # dry run
#   sudo bash tuning/host-tune.sh --shard-cores 1-3 --apply
#
# Options:
#   --shard-cores LIST   cores running shards (the tuning file's shard_cores),
#                        kernel CPU-list syntax: 1-3,5   (required)
#   --irq-cores LIST     cores that take the NIC's IRQs (default: every online
#                        core that is not a shard core, i.e. ingest + the OS)
#   --nic IFACE          a NIC whose IRQs to move (repeatable; default: every
#                        interface backed by a PCI device)
#   --user NAME          account the limits file is for (default: ctirouter)
#   --apply              change the system instead of printing the plan
#
# See tuning/README.md for why each setting. Changes made with --apply to
# sysctls, IRQ affinity and the governor last until reboot; the limits file
# in /etc/security/limits.d lasts. irqbalance, if running, undoes IRQ
# affinity: stop it or ban the shard cores (IRQBALANCE_BANNED_CPULIST).
set -euo pipefail

readonly SYSCTL_PLAN=(
	# listen() backlog: glommio asks for 1024 per shard; the kernel caps it
	# here. A failover sends ~2,000 desktops reconnecting at once.
	"net.core.somaxconn=4096"
	"net.ipv4.tcp_max_syn_backlog=4096"
	# SO_SNDBUF/SO_RCVBUF requests are capped by these (the tuning files ask
	# for up to 512 KiB send).
	"net.core.wmem_max=4194304"
	"net.core.rmem_max=4194304"
	# Autotuning range for sockets that keep it (the upstream session):
	# min, default, max bytes.
	"net.ipv4.tcp_wmem=4096 65536 4194304"
	"net.ipv4.tcp_rmem=4096 131072 6291456"
	# Every session is a socket: room for 10,000 sessions and then some.
	"fs.file-max=1048576"
	"fs.nr_open=1048576"
)
# Open files per process (sessions + listeners + io_uring) and locked memory
# for io_uring's registered buffers (512 KiB per executor).
readonly NOFILE=65536
readonly MEMLOCK_KIB=65536

apply=0
shard_list=""
irq_list=""
user="ctirouter"
nics=()

die() {
	echo "host-tune.sh: $*" >&2
	exit 2
}

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# Expand a kernel CPU list ("0-2,5") to one number per line.
expand_list() {
	local part first last
	local -a parts
	IFS=',' read -r -a parts <<<"$1"
	for part in "${parts[@]}"; do
		[[ -z "$part" ]] && continue
		if [[ "$part" =~ ^([0-9]+)-([0-9]+)$ ]]; then
			first=${BASH_REMATCH[1]}
			last=${BASH_REMATCH[2]}
		elif [[ "$part" =~ ^[0-9]+$ ]]; then
			first=$part
			last=$part
		else
			die "bad CPU list '$1' (want e.g. 1-3,5)"
		fi
		((first <= last)) || die "bad CPU range '$part'"
		seq "$first" "$last"
	done
}

# Join lines of numbers into a CPU list with commas.
join_list() {
	paste -sd, -
}

parse_args() {
	while (($# > 0)); do
		case "$1" in
		--shard-cores) shard_list=${2:?--shard-cores needs a LIST}; shift 2 ;;
		--irq-cores) irq_list=${2:?--irq-cores needs a LIST}; shift 2 ;;
		--nic) nics+=("${2:?--nic needs an IFACE}"); shift 2 ;;
		--user) user=${2:?--user needs a NAME}; shift 2 ;;
		--apply) apply=1; shift ;;
		-h | --help) usage; exit 0 ;;
		*) die "unknown argument '$1' (see --help)" ;;
		esac
	done
	[[ -n "$shard_list" ]] || die "--shard-cores LIST is required (see --help)"
}

# Print the action; run it only with --apply. A failing write is reported,
# not fatal: some IRQs are kernel-managed and refuse a new affinity.
act() {
	local description=$1
	shift
	if ((apply)); then
		if "$@"; then
			echo "  done: $description"
		else
			echo "  FAILED: $description" >&2
		fi
	else
		echo "  would: $description"
	fi
}

write_file() {
	printf '%s\n' "$2" >"$1"
}

online_cpus() {
	expand_list "$(cat /sys/devices/system/cpu/online)"
}

# The PCI device (with msi_irqs or irq) behind a network interface, if any.
nic_pci_dir() {
	local dir
	dir=$(readlink -f "/sys/class/net/$1/device" 2>/dev/null) || return 1
	while [[ "$dir" == /sys/devices/* ]]; do
		if [[ -d "$dir/msi_irqs" || -f "$dir/irq" ]]; then
			echo "$dir"
			return 0
		fi
		dir=$(dirname "$dir")
	done
	return 1
}

nic_irqs() {
	local dir irq
	dir=$(nic_pci_dir "$1") || return 0
	if [[ -d "$dir/msi_irqs" ]]; then
		for irq in "$dir"/msi_irqs/*; do
			[[ -e "$irq" ]] && basename "$irq"
		done
	elif [[ -f "$dir/irq" ]]; then
		cat "$dir/irq"
	fi
}

plan_irqs() {
	local nic irq path current found=0
	if ((${#nics[@]} == 0)); then
		for path in /sys/class/net/*; do
			nic=$(basename "$path")
			[[ "$nic" == lo ]] && continue
			nic_pci_dir "$nic" >/dev/null && nics+=("$nic")
		done
	fi
	echo "IRQ affinity: NIC interrupts on cores $irq_list, away from shard cores $shard_list"
	for nic in "${nics[@]}"; do
		while read -r irq; do
			[[ -z "$irq" ]] && continue
			path=/proc/irq/$irq/smp_affinity_list
			[[ -r "$path" ]] || continue
			found=1
			current=$(cat "$path")
			if [[ "$current" == "$irq_list" ]]; then
				echo "  ok: irq $irq ($nic) already on $current"
			else
				act "irq $irq ($nic): smp_affinity_list $current -> $irq_list" \
					write_file "$path" "$irq_list"
			fi
		done < <(nic_irqs "$nic")
	done
	((found)) || echo "  (no NIC interrupts found under /sys/class/net; nothing to move)"
	if pgrep -x irqbalance >/dev/null 2>&1; then
		echo "  note: irqbalance is running and will move them back: stop it, or set"
		echo "        IRQBALANCE_BANNED_CPULIST=$shard_list in its configuration"
	fi
}

# Field by field, the larger of two space-separated number lists: the plan
# only ever raises a setting, never lowers what the host already has.
at_least() {
	local -a have want
	local i out=()
	read -r -a have <<<"$1"
	read -r -a want <<<"$2"
	for i in "${!want[@]}"; do
		out+=("$((${have[i]:-0} > want[i] ? ${have[i]:-0} : want[i]))")
	done
	echo "${out[*]}"
}

plan_sysctls() {
	local entry key want path current
	echo "sysctls, raised where lower (until reboot; persist in /etc/sysctl.d/90-ctirouter.conf):"
	for entry in "${SYSCTL_PLAN[@]}"; do
		key=${entry%%=*}
		want=${entry#*=}
		path=/proc/sys/${key//.//}
		if [[ ! -r "$path" ]]; then
			echo "  skip: $key (not on this kernel)"
			continue
		fi
		current=$(tr -s '[:space:]' ' ' <"$path" | sed 's/ $//')
		want=$(at_least "$current" "$want")
		if [[ "$current" == "$want" ]]; then
			echo "  ok: $key = $current"
		else
			act "$key: $current -> $want" write_file "$path" "$want"
		fi
	done
}

plan_limits() {
	local file=/etc/security/limits.d/90-ctirouter.conf
	local content
	content=$(printf '%s\n' \
		"# ctirouter: sessions are sockets; io_uring locks memory (tuning/README.md)" \
		"$user soft nofile $NOFILE" "$user hard nofile $NOFILE" \
		"$user soft memlock $MEMLOCK_KIB" "$user hard memlock $MEMLOCK_KIB")
	echo "limits for user '$user' (this shell: nofile $(ulimit -n), memlock $(ulimit -l) KiB;"
	echo "  under systemd set LimitNOFILE=$NOFILE and LimitMEMLOCK=$((MEMLOCK_KIB * 1024)) instead):"
	if [[ -f "$file" && "$(cat "$file")" == "$content" ]]; then
		echo "  ok: $file is in place"
	else
		act "write $file: nofile $NOFILE, memlock $MEMLOCK_KIB KiB" write_file "$file" "$content"
	fi
}

plan_governor() {
	local cpu path current found=0
	echo "CPU frequency governor: performance on every online core (all are on the event path)"
	while read -r cpu; do
		path=/sys/devices/system/cpu/cpu$cpu/cpufreq/scaling_governor
		[[ -r "$path" ]] || continue
		found=1
		current=$(cat "$path")
		if [[ "$current" == performance ]]; then
			echo "  ok: cpu $cpu already performance"
		else
			act "cpu $cpu: governor $current -> performance" write_file "$path" performance
		fi
	done < <(online_cpus)
	((found)) || echo "  (no cpufreq on this machine, e.g. a VM: nothing to set)"
}

# Refuse cores that are not online: a tuning file for another machine.
require_online() {
	local role=$1 cpu
	shift
	for cpu in "$@"; do
		[[ -n "$cpu" && " ${online[*]} " == *" $cpu "* ]] ||
			die "$role core '$cpu' is not online on this machine (online: $(printf '%s\n' "${online[@]}" | join_list))"
	done
}

main() {
	parse_args "$@"
	local -a online shards irqs
	local expanded
	mapfile -t online < <(online_cpus)
	expanded=$(expand_list "$shard_list") || exit 2
	mapfile -t shards <<<"$expanded"
	require_online shard "${shards[@]}"
	if [[ -n "$irq_list" ]]; then
		expanded=$(expand_list "$irq_list") || exit 2
		mapfile -t irqs <<<"$expanded"
		require_online IRQ "${irqs[@]}"
	else
		mapfile -t irqs < <(printf '%s\n' "${online[@]}" | grep -vxF -f <(printf '%s\n' "${shards[@]}") || true)
		((${#irqs[@]} > 0)) || die "every online core is a shard core: leave one for IRQs (--irq-cores)"
	fi
	irq_list=$(printf '%s\n' "${irqs[@]}" | join_list)
	shard_list=$(printf '%s\n' "${shards[@]}" | join_list)
	if ((apply)); then
		((EUID == 0)) || die "--apply needs root"
		echo "host-tune.sh: APPLYING"
	else
		echo "host-tune.sh: dry run, nothing is changed (add --apply to change it)"
	fi
	plan_irqs
	plan_sysctls
	plan_limits
	plan_governor
}

main "$@"
