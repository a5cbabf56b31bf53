#!/usr/bin/env bash
# Starts N short processes (default 5000) with a unique command name, first
# alone, then while `eunomia run process` traces them, and prints how many
# exec and exit events were captured against how many were generated, the
# losses the agent counted, and the workload's slowdown. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go build -o "$work/eunomia" ./cmd/eunomia
go build -o "$work/loadgen" ./bench/loadgen
comm="eubench$$"
comm=${comm:0:15}
cp /bin/true "$work/$comm"

echo "baseline: $n execs of $comm, no tracer"
base=$("$work/loadgen" -workload exec -n "$n" -binary "$work/$comm")
echo "  $base"

"$work/eunomia" run process --comm "$comm" --output "$work/events.json" 2>"$work/agent.log" &
agent=$!
for _ in $(seq 100); do grep -q "tracker started" "$work/agent.log" && break; sleep 0.1; done

echo "traced: $n execs of $comm under eunomia run process --comm $comm"
traced=$("$work/loadgen" -workload exec -n "$n" -binary "$work/$comm")
echo "  $traced"
sleep 1
kill -INT "$agent"
wait "$agent"

generated=$(echo "$traced" | sed 's/.*"generated":\([0-9]*\).*/\1/')
execs=$(grep -c '"kind":"process.exec"' "$work/events.json" || true)
exits=$(grep -c '"kind":"process.exit"' "$work/events.json" || true)
base_rate=$(echo "$base" | sed 's/.*"per_second":\([0-9.]*\).*/\1/')
traced_rate=$(echo "$traced" | sed 's/.*"per_second":\([0-9.]*\).*/\1/')
echo
echo "generated:        $generated"
echo "captured exec:    $execs ($(awk -v a="$execs" -v b="$generated" 'BEGIN{printf "%.2f", 100*a/b}')%)"
echo "captured exit:    $exits ($(awk -v a="$exits" -v b="$generated" 'BEGIN{printf "%.2f", 100*a/b}')%)"
echo "agent summary:    $(grep 'process#1:' "$work/agent.log")"
echo "exec rate alone:  $base_rate/s"
echo "exec rate traced: $traced_rate/s (slowdown $(awk -v a="$base_rate" -v b="$traced_rate" 'BEGIN{printf "%.1f", 100*(a-b)/a}')%)"
