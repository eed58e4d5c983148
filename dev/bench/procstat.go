package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of the CPU times in /proc (USER_HZ, fixed at 100 in
// Linux's user ABI whatever the kernel's own tick rate).
const userHZ = 100

// procTimes is one process's line of /proc/<pid>/stat, in clock ticks.
type procTimes struct {
	pid, ppid int
	comm      string
	// own is user+system time of the process's threads; reaped is what its
	// children that it waited for used (cutime+cstime).
	own, reaped uint64
}

// parseStat reads a /proc/<pid>/stat line. The command name sits in
// parentheses and may hold spaces or parentheses itself, so the fields are
// counted from the last ")".
func parseStat(line string) (procTimes, error) {
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return procTimes{}, fmt.Errorf("stat: no command name in %q", line)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return procTimes{}, fmt.Errorf("stat: pid: %w", err)
	}
	// After ")": state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	f := strings.Fields(line[end+1:])
	if len(f) < 15 {
		return procTimes{}, fmt.Errorf("stat: %d fields after the name", len(f))
	}
	num := func(i int) (uint64, error) { // i is the field's number in proc(5)
		v, err := strconv.ParseInt(f[i-3], 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("stat: field %d: %q", i, f[i-3])
		}
		return uint64(v), nil
	}
	var v [5]uint64
	for i, field := range []int{4, 14, 15, 16, 17} {
		if v[i], err = num(field); err != nil {
			return procTimes{}, err
		}
	}
	return procTimes{pid: pid, ppid: int(v[0]), comm: line[open+1 : end], own: v[1] + v[2], reaped: v[3] + v[4]}, nil
}

// procTable is a snapshot of every readable process's CPU times.
type procTable map[int]procTimes

func readProcTable() procTable {
	t := procTable{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return t
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		if p, err := parseStat(strings.TrimSpace(string(b))); err == nil {
			t[p.pid] = p
		}
	}
	return t
}

// tree is the CPU ticks used by pid and all its descendants: the living
// ones' own and reaped times, so that a PostgreSQL backend that came and
// went in between is counted in the postmaster's reaped time.
func (t procTable) tree(pid int) uint64 {
	kids := map[int][]int{}
	for _, p := range t {
		kids[p.ppid] = append(kids[p.ppid], p.pid)
	}
	var sum uint64
	var walk func(int)
	walk = func(p int) {
		pt, ok := t[p]
		if !ok {
			return
		}
		sum += pt.own + pt.reaped
		for _, k := range kids[p] {
			walk(k)
		}
	}
	walk(pid)
	return sum
}

// machineBusy is the machine's busy CPU ticks (all cores, every process)
// from the first line of /proc/stat: everything but idle and iowait.
func machineBusy() uint64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	busy, _ := parseCPULine(line)
	return busy
}

// parseCPULine sums the busy fields of /proc/stat's "cpu" line (user nice
// system idle iowait irq softirq steal ...; guest time is already in user).
func parseCPULine(line string) (busy uint64, err error) {
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: not a cpu line: %q", line)
	}
	for i, v := range f[1:] {
		if i >= 8 {
			break // guest and guest_nice are counted in user already
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %q: %w", v, err)
		}
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		busy += n
	}
	return busy, nil
}

// cpuGroups names the process groups whose CPU time is measured: each
// group is a set of root processes counted with their descendants.
type cpuGroups []cpuGroup

type cpuGroup struct {
	name string
	pids []int
	// part marks a share of another group (one Temporal role), reported
	// apart and left out of the sums.
	part bool
}

// whole are the groups that are not parts of another.
func (g cpuGroups) whole() cpuGroups {
	var out cpuGroups
	for _, x := range g {
		if !x.part {
			out = append(out, x)
		}
	}
	return out
}

// cpuParts is the CPU use of the groups that are parts of another.
func cpuParts(groups cpuGroups, a, b cpuSnapshot, wallSeconds float64, lifecycles int) []CPUUse {
	var out []CPUUse
	for _, g := range groups {
		if g.part {
			out = append(out, cpuUse(g.name, sub(b.groups[g.name], a.groups[g.name]), wallSeconds, lifecycles))
		}
	}
	return out
}

func cpuUse(name string, ticks uint64, wallSeconds float64, lifecycles int) CPUUse {
	u := CPUUse{Group: name, Seconds: round2(float64(ticks) / userHZ)}
	if wallSeconds > 0 {
		u.Cores = round2(float64(ticks) / userHZ / wallSeconds)
	}
	if lifecycles > 0 {
		u.PerLifecycleMS = round2(float64(ticks) / userHZ * 1000 / float64(lifecycles))
	}
	return u
}

// cpuSnapshot is the ticks used so far by each group, by this process
// (the load, the Upsampler stand-in and the sample images, without its
// children) and by the whole machine.
type cpuSnapshot struct {
	groups map[string]uint64
	self   uint64
	// children is every descendant of this process: the groups and the
	// other components it started (stripe-mock, mailpit).
	children uint64
	machine  uint64
}

func takeCPU(groups cpuGroups) cpuSnapshot {
	t := readProcTable()
	s := cpuSnapshot{groups: map[string]uint64{}, machine: machineBusy()}
	for _, g := range groups {
		for _, pid := range g.pids {
			s.groups[g.name] += t.tree(pid)
		}
	}
	if me, ok := t[os.Getpid()]; ok {
		s.self = me.own
		s.children = t.tree(me.pid) - me.own
	}
	return s
}

// CPUUse is the CPU time each group used over a phase, in seconds.
type CPUUse struct {
	Group   string  `json:"group"`
	Seconds float64 `json:"cpu_seconds"`
	// Cores is Seconds over the phase's wall time: cores kept busy.
	Cores float64 `json:"cores_busy"`
	// PerLifecycleMS is Seconds per lifecycle of the phase, in ms.
	PerLifecycleMS float64 `json:"cpu_ms_per_lifecycle,omitempty"`
}

// cpuBetween turns two snapshots into CPU use, in the groups' order, then
// the bench process, the rest of the machine (other processes, including
// anything else running there) and the machine's total.
func cpuBetween(groups cpuGroups, a, b cpuSnapshot, wallSeconds float64, lifecycles int) []CPUUse {
	var out []CPUUse
	add := func(name string, ticks uint64) { out = append(out, cpuUse(name, ticks, wallSeconds, lifecycles)) }
	var measured uint64
	for _, g := range groups.whole() {
		d := sub(b.groups[g.name], a.groups[g.name])
		measured += d
		add(g.name, d)
	}
	others := sub(sub(b.children, a.children), measured)
	add("stripe-mock, mailpit", others)
	self := sub(b.self, a.self)
	add("bench (load, Upsampler stand-in)", self)
	total := sub(b.machine, a.machine)
	add("rest of the machine", sub(total, measured+others+self))
	add("machine total", total)
	return out
}

// sub is a-b, or 0 when a counter went backwards (a process restarted).
func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}
