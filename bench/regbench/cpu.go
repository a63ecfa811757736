package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// cpuSample is a snapshot of machine-wide and per-process CPU time, in
// clock ticks (USER_HZ), to tell how much CPU *other* processes used while a
// scenario ran: on a shared machine that is the main source of noise.
type cpuSample struct {
	ok    bool
	busy  int64 // all CPUs: user+nice+system (irq and softirq time, which our own loopback traffic causes, left out)
	total int64 // all CPUs: every field but guest
	steal int64
	procs map[int]procCPU
}

type procCPU struct {
	comm   string
	ticks  int64 // utime+stime
	kernel bool  // a kernel thread (child of kthreadd)
}

func takeCPUSample() cpuSample {
	var s cpuSample
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return s
	}
	v := make([]int64, 9)
	for i := 1; i < 9; i++ {
		v[i], _ = strconv.ParseInt(f[i], 10, 64)
	}
	// user nice system idle iowait irq softirq steal
	s.busy = v[1] + v[2] + v[3]
	s.total = v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7] + v[8]
	s.steal = v[8]
	s.procs = map[int]procCPU{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return s
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProcCPU(pid); ok {
			s.procs[pid] = p
		}
	}
	s.ok = true
	return s
}

// readProcCPU reads a process's name, parent and utime+stime.
func readProcCPU(pid int) (procCPU, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procCPU{}, false
	}
	// The command name is in parentheses and may hold spaces.
	open, end := strings.IndexByte(string(b), '('), strings.LastIndexByte(string(b), ')')
	if open < 0 || end < open {
		return procCPU{}, false
	}
	f := strings.Fields(string(b)[end+1:])
	// f[0] is field 3 (state), f[1] ppid, f[11] utime, f[12] stime.
	if len(f) < 13 {
		return procCPU{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return procCPU{}, false
	}
	return procCPU{comm: string(b)[open+1 : end], ticks: u + st, kernel: pid == 2 || ppid == 2}, true
}

// cpuShares says where the machine's CPU time went between two samples,
// in percent of all CPUs' time.
type cpuShares struct {
	Other  float64  // user processes other than regbench and the registry (short-lived ones included)
	Kernel float64  // kernel threads (writeback, ksoftirqd, ...), which our own I/O also keeps busy
	Steal  float64  // taken by the hypervisor
	Top    []string // the busiest other processes: "name 12%"
}

func cpuSharesBetween(a, b cpuSample, self, server int) (cpuShares, bool) {
	var c cpuShares
	if !a.ok || !b.ok {
		return c, false
	}
	total := b.total - a.total
	if total <= 0 {
		return c, false
	}
	pct := func(t int64) float64 { return 100 * float64(t) / float64(total) }
	var ours, kernel int64
	type named struct {
		comm  string
		ticks int64
	}
	var others []named
	for pid, p := range b.procs {
		d := p.ticks - a.procs[pid].ticks // a new process: all of its time
		if q, ok := a.procs[pid]; ok && q.comm != p.comm && !p.kernel {
			d = p.ticks // pid reused by a process that exec'd meanwhile
		}
		switch {
		case pid == self || pid == server || alsoOurs[pid]:
			ours += d
		case p.kernel:
			kernel += d
		case d > 0:
			others = append(others, named{p.comm, d})
		}
	}
	// Busy time not accounted to ours or kernel threads went to other user
	// processes, including those that came and went in between.
	other := (b.busy - a.busy) - ours - kernel
	if other < 0 {
		other = 0
	}
	c.Other, c.Kernel, c.Steal = pct(other), pct(kernel), pct(b.steal-a.steal)
	sort.Slice(others, func(i, j int) bool { return others[i].ticks > others[j].ticks })
	for i := 0; i < len(others) && i < 3; i++ {
		c.Top = append(c.Top, fmt.Sprintf("%s %.0f%%", others[i].comm, pct(others[i].ticks)))
	}
	return c, true
}

// alsoOurs are more pids of the system under test (-also-pids: the S3
// benchmark's MinIO), counted with the registry rather than as other load.
var alsoOurs = map[int]bool{}

// userHZ is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const userHZ = 100

// cpuSecondsBetween is the CPU time the server and the -also-pids spent
// between two samples.
func cpuSecondsBetween(a, b cpuSample, server int) (srv, also float64, ok bool) {
	if !a.ok || !b.ok {
		return 0, 0, false
	}
	p, okA := a.procs[server]
	q, okB := b.procs[server]
	if !okA || !okB {
		return 0, 0, false
	}
	var others int64
	for pid := range alsoOurs {
		others += b.procs[pid].ticks - a.procs[pid].ticks
	}
	return float64(q.ticks-p.ticks) / userHZ, float64(others) / userHZ, true
}
