"""The shell scripts NixDeck runs on a device to activate a system safely (see `activation`).

Activation runs under a **supervisor on the device** that survives the SSH connection: a transient
systemd unit where systemd runs, else a process in its own session (``setsid``), so neither a
dropped connection nor a killed controller stops it half-way. The supervisor

* takes the device's activation lock (``flock``), so two activations never run side by side,
* records what ran before (``/run/current-system``, the system profile's generation link and path),
* sets the profile and runs ``switch-to-configuration``,
* then waits for the controller's **decision**: ``confirm``/``keep`` keeps the new system,
  ``rollback`` (or no decision before its deadline: the magic rollback of deploy-rs) restores
  exactly the recorded previous system — profile generation and running system.

Its state is a directory ``/nix/var/nixdeck/activations/<id>/`` (under ``/nix`` because that is
the device's own, persistent and writable by root): ``status`` (``key=value`` lines, appended),
``switch.log`` (everything the profile and switch commands printed) and ``decision`` (a symlink
whose target is the decision: creating it is atomic, so the controller and the supervisor's
deadline can never both win). Values reach every script as positional parameters, never inside
the script text.
"""

from __future__ import annotations

ACTIVATIONS_DIR = "/nix/var/nixdeck/activations"

# $1 dir, $2 system, $3 action, $4 profile, $5 set_profile (1|0), $6 seconds to wait for a
# decision after the switch, $7 rollback when undecided (1|0)
SUPERVISOR = r"""set -u
dir="$1"; system="$2"; action="$3"; profile="$4"; set_profile="$5"; wait_s="$6"; rollback_on="$7"
trap '' HUP INT
log="$dir/switch.log"
st() { printf '%s\n' "$*" >> "$dir/status"; }
decide() { ln -s "$1" "$dir/decision" 2>/dev/null; readlink "$dir/decision"; }
final() {
  st "after-current=$(readlink /run/current-system 2>/dev/null)"
  st "after-link=$(readlink "$profile" 2>/dev/null)"
  st "after-profile=$(readlink -e "$profile" 2>/dev/null)"
  st "final=$1"
  exit 0
}
switch_to() {  # system action: run a switch, exit code 4 (some units failed) counts as done
  "$1/bin/switch-to-configuration" "$2" >>"$log" 2>&1
  c=$?
  [ "$c" -eq 0 ] || [ "$c" -eq 4 ]
}
restore() {  # back to exactly what ran before this activation
  why="$(cat "$dir/reason" 2>/dev/null)"
  st "rolling-back=${why:-$1}"
  echo "NixDeck: rolling back: ${why:-$1}" >>"$log"
  rc=0
  if [ -z "$cur" ] && [ -z "$prof" ]; then
    # nothing ran before (a first deploy): take back the profile this activation made
    if [ "$set_profile" = 1 ]; then rm -f "$profile" || rc=1; fi
    if [ "$action" = switch ] || [ "$action" = test ]; then rm -f /run/current-system || rc=1; fi
    if [ "$rc" -eq 0 ]; then final rolled-back; else final rollback-failed; fi
  fi
  if [ "$set_profile" = 1 ]; then
    gen="${link%-link}"; gen="${gen##*-}"
    if [ -n "$link" ] && [ -n "$prof" ] && [ "$(readlink -e "${profile%/*}/$link" 2>/dev/null)" = "$prof" ]; then
      nix-env -p "$profile" --switch-generation "$gen" >>"$log" 2>&1 || rc=1
    elif [ -n "$prof" ]; then
      nix-env -p "$profile" --set "$prof" >>"$log" 2>&1 || rc=1
    else
      nix-env -p "$profile" --set "$cur" >>"$log" 2>&1 || rc=1
    fi
  fi
  case "$action" in
    switch)
      if [ -n "$cur" ] && { [ -z "$prof" ] || [ "$cur" = "$prof" ]; }; then
        switch_to "$cur" switch || rc=1
      else
        if [ -n "$prof" ]; then switch_to "$prof" boot || rc=1; fi
        if [ -n "$cur" ]; then switch_to "$cur" test || rc=1; fi
      fi ;;
    test) if [ -n "$cur" ]; then switch_to "$cur" test || rc=1; fi ;;
    boot) if [ -n "$prof" ]; then switch_to "$prof" boot || rc=1; fi ;;
  esac
  if [ "$rc" -eq 0 ]; then final rolled-back; else final rollback-failed; fi
}
st "supervisor=$$"
base="${dir%/*}"
find "$base" -mindepth 1 -maxdepth 1 -type d -mtime +14 -exec rm -rf {} + 2>/dev/null
exec 9>>"${base%/*}/activation.lock"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
  st "waiting-lock=1"
  echo "NixDeck: waiting for an earlier activation on this device to end" >>"$log"
  flock 9
fi
cur="$(readlink /run/current-system 2>/dev/null)"
link="$(readlink "$profile" 2>/dev/null)"
prof="$(readlink -e "$profile" 2>/dev/null)"
st "before-current=$cur"
st "before-link=$link"
st "before-profile=$prof"
if [ "$(readlink "$dir/decision" 2>/dev/null)" = rollback ]; then final not-started; fi
if [ "$set_profile" = 1 ]; then
  if ! nix-env -p "$profile" --set "$system" >>"$log" 2>&1; then
    st "profile-failed=1"
    restore "setting the system profile failed"
  fi
  st "profile-set=$(readlink "$profile" 2>/dev/null)"
fi
# the switch runs in its own session, so that a rollback decided while it runs (a cancel) can stop
# it whole: the controller does that (DECIDE with interrupt); the supervisor only waits for it
{ setsid /bin/sh -c 'echo "$$" > "$1/switch.pid"; exec "$2/bin/switch-to-configuration" "$3"' sh \
    "$dir" "$system" "$action" >>"$log" 2>&1; echo "$?" > "$dir/switch.rc"; } &
until [ -s "$dir/switch.pid" ] || [ -s "$dir/switch.rc" ]; do sleep 0.02; done
st "switch-pid=$(cat "$dir/switch.pid" 2>/dev/null)"
wait
code="$(cat "$dir/switch.rc")"
st "switched=$code"
if [ "$action" = dry-activate ]; then decide keep >/dev/null; final done; fi
if [ "$code" -ne 0 ] && [ "$code" -ne 4 ]; then
  if [ "$rollback_on" = 1 ] && [ "$(decide rollback)" = rollback ]; then
    restore "switch-to-configuration $action exited with code $code"
  fi
  final failed
fi
n=$((wait_s * 10))
while [ ! -L "$dir/decision" ] && [ "$n" -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
if [ "$rollback_on" = 1 ]; then what="$(decide rollback)"; else what="$(decide keep)"; fi
if [ "$what" = rollback ]; then
  [ -s "$dir/reason" ] || echo "not confirmed within ${wait_s} s" > "$dir/reason"
  restore "not confirmed"
fi
final "$what"
"""

# $1 base dir, $2 id, $3 supervisor text, $4 tag for NixDeck's own lines, then the supervisor's
# arguments after its dir. Starts the supervisor detached, streams switch.log until the switch
# ends, prints the status lines (tagged, on stderr) and exits with switch-to-configuration's code.
LAUNCH = r"""set -u
base="$1"; id="$2"; script="$3"; tag="$4"; shift 4
dir="$base/$id"
mkdir -p "$dir" || { echo "$tag launch-failed=cannot create $dir" >&2; exit 90; }
printf '%s\n' "$script" > "$dir/supervise.sh" && : > "$dir/switch.log" && : >> "$dir/status" || {
  echo "$tag launch-failed=cannot write to $dir" >&2; exit 90; }
if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
  echo "$tag supervisor-kind=systemd unit nixdeck-activate-$id" >&2
  systemd-run --quiet --collect --no-ask-password --service-type=exec --unit="nixdeck-activate-$id" \
    --description="NixDeck activation $id" /bin/sh "$dir/supervise.sh" "$dir" "$@" \
    || { echo "$tag launch-failed=systemd-run failed" >&2; exit 91; }
else
  echo "$tag supervisor-kind=detached process (setsid)" >&2
  setsid /bin/sh "$dir/supervise.sh" "$dir" "$@" </dev/null >>"$dir/supervisor.log" 2>&1 &
fi
i=0
until grep -q -e '^switch-pid=' -e '^final=' "$dir/status" 2>/dev/null; do
  sleep 0.1; i=$((i+1))
  if [ "$i" -eq 100 ] && ! grep -q '^supervisor=' "$dir/status"; then
    echo "$tag launch-failed=the supervisor did not start" >&2; exit 92
  fi
  if [ "$i" -eq 10 ] && grep -q '^waiting-lock=' "$dir/status"; then
    echo "waiting for an earlier activation on this device to end"
  fi
done
spid="$(sed -n 's/^switch-pid=//p' "$dir/status")"
if [ -n "$spid" ]; then tail -n +1 -s 0.05 --pid="$spid" -f "$dir/switch.log"; else cat "$dir/switch.log"; fi
until grep -q -e '^switched=' -e '^final=' "$dir/status"; do sleep 0.05; done
sed "s/^/$tag /" "$dir/status" >&2
code="$(sed -n 's/^switched=//p' "$dir/status")"
exit "${code:-93}"
"""

# Waits (bounded by $limit seconds) until the supervisor has written its end and exited.
_AWAIT_END = r"""i=0; k=0
until grep -q '^final=' "$dir/status" 2>/dev/null; do
  if [ "${interrupt:-0}" = 1 ] && [ -s "$dir/switch.pid" ] && [ ! -s "$dir/switch.rc" ]; then
    # a rollback was decided while the switch runs: stop it (TERM, then KILL after 5 s)
    [ "$k" -eq 0 ] && echo "interrupting=$(cat "$dir/reason" 2>/dev/null)" >> "$dir/status"
    if [ "$k" -lt 100 ]; then kill -TERM "-$(cat "$dir/switch.pid")" 2>/dev/null; else kill -KILL "-$(cat "$dir/switch.pid")" 2>/dev/null; fi
    k=$((k+1))
  fi
  sleep 0.05; i=$((i+1))
  [ "$i" -ge $((limit * 20)) ] && break
done
sup="$(sed -n 's/^supervisor=//p' "$dir/status" | head -n 1)"
i=0
while [ -n "$sup" ] && grep -q '^final=' "$dir/status" && kill -0 "$sup" 2>/dev/null && [ "$i" -lt 100 ]; do
  sleep 0.02; i=$((i+1))
done
"""

# $1 dir, $2 decision (confirm|keep|rollback), $3 reason, $4 seconds to wait for the supervisor to
# end (0: do not wait), $5 the system that must be running for the decision to be made (else it
# prints "running=PATH" and decides nothing), $6 1: stop a switch that runs when rollback stands.
# Prints the decision that won, then (when waiting) "--status--" and the status.
DECIDE = r"""dir="$1"; limit="${4:-0}"; expected="${5:-}"; interrupt="${6:-0}"
[ -d "$dir" ] || { echo missing; exit 3; }
if [ -n "$expected" ]; then
  running="$(readlink /run/current-system 2>/dev/null)"
  [ "$running" = "$expected" ] || { echo "running=$running"; exit 4; }
fi
if [ "$2" = rollback ] && [ -n "$3" ] && [ ! -L "$dir/decision" ]; then printf '%s\n' "$3" > "$dir/reason"; fi
ln -s "$2" "$dir/decision" 2>/dev/null
readlink "$dir/decision"
[ "$limit" -gt 0 ] || exit 0
""" + _AWAIT_END + r"""echo "--status--"
cat "$dir/status"
"""

# $1 dir, $2 seconds: waits (bounded) until the supervisor is done, then prints its status
WAIT_FINAL = r"""dir="$1"; limit="$2"
[ -d "$dir" ] || { echo missing; exit 3; }
""" + _AWAIT_END + r"""cat "$dir/status"
"""
