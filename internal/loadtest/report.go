package loadtest

import (
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Report is what a Run measured.
type Report struct {
	Machine Machine        `json:"machine"`
	Config  ConfigReport   `json:"config"`
	Setup   SetupReport    `json:"setup"`
	Targets []TargetReport `json:"targets"`
	Checks  []Check        `json:"checks"`
	Dir     string         `json:"-"`
}

// Machine describes where the run ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	MemTotal  int64  `json:"mem_total_bytes"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel"`
	FileLimit uint64 `json:"open_file_limit"`
}

func (m Machine) String() string {
	return fmt.Sprintf("%d CPUs (%s), %s RAM, %s, Linux %s, open-file limit %d",
		m.CPUs, m.CPUModel, gib(m.MemTotal), m.GoVersion, m.Kernel, m.FileLimit)
}

// ConfigReport is the run's configuration.
type ConfigReport struct {
	Devices         int      `json:"devices"`
	GroupSize       int      `json:"group_size"`
	Groups          int      `json:"groups"`
	SendersPerGroup int      `json:"senders_per_group"`
	Rates           []int    `json:"rates"`
	Duration        string   `json:"duration"`
	Drain           string   `json:"drain"`
	MessageBytes    int      `json:"message_bytes"`
	Ack             string   `json:"ack"`
	TargetEnv       []string `json:"target_env,omitempty"`
}

func reportConfig(c Config) ConfigReport {
	ack := string(c.Ack)
	if c.Ack == AckInterval {
		ack += " " + c.AckInterval.String()
	}
	return ConfigReport{Devices: c.Devices, GroupSize: c.GroupSize, Groups: c.Devices / c.GroupSize,
		SendersPerGroup: c.SendersPerGroup, Rates: c.Rates, Duration: c.Duration.String(), Drain: c.Drain.String(),
		MessageBytes: c.MessageBytes, Ack: ack, TargetEnv: c.TargetEnv}
}

// SetupReport is how long setup took.
type SetupReport struct {
	EnrolSeconds    float64 `json:"enrol_seconds"`
	GroupsSeconds   float64 `json:"groups_seconds"`
	EncryptSeconds  float64 `json:"encrypt_seconds"`
	Messages        int     `json:"messages"`
	CiphertextBytes int     `json:"mls_message_bytes"`
}

// TargetReport is one target's measurements.
type TargetReport struct {
	Name           string           `json:"name"`
	Addr           string           `json:"addr"`
	ConnectSeconds float64          `json:"connect_seconds"`
	Idle           ChildStats       `json:"idle"` // every device connected, after setup's entries, after a GC
	Runs           []RunReport      `json:"runs"`
	Reconnects     int64            `json:"stream_reconnects"`
	StreamCloses   map[string]int64 `json:"stream_closes,omitempty"` // by WebSocket close code
	LogLines       int              `json:"log_lines"`               // warnings and errors the target logged
	FirstLogLine   string           `json:"first_log_line,omitempty"`
}

// RunReport is one rate against one target.
type RunReport struct {
	Rate               int            `json:"rate"`
	WindowSeconds      float64        `json:"window_seconds"`
	Messages           int            `json:"messages"`
	Skipped            int64          `json:"not_sent"` // the sender's queue was full
	Accepted           int            `json:"accepted"`
	AcceptedInWindow   int            `json:"accepted_in_window"`
	AcceptedPerSec     float64        `json:"accepted_per_sec"`
	Failures           map[string]int `json:"failures,omitempty"`
	AcceptLatency      Latency        `json:"accept_latency"`
	ExpectedDeliveries int64          `json:"expected_deliveries"`
	Deliveries         int64          `json:"deliveries"`
	DeliveriesInWindow int64          `json:"deliveries_in_window"`
	DeliveriesPerSec   float64        `json:"deliveries_per_sec"`
	Delivered          float64        `json:"delivered_fraction"`
	DeliveryLatency    Latency        `json:"delivery_latency"`
	Duplicates         int64          `json:"duplicates"`
	Unknown            int64          `json:"unknown_entries"`
	AcksSent           int64          `json:"acks_sent"`
	AcksDropped        int64          `json:"acks_not_sent"`
	TargetCPU          float64        `json:"target_cpu_cores"`
	GeneratorCPU       float64        `json:"generator_cpu_cores"`
	Machine            SystemCPU      `json:"machine_cpu_cores"` // every process and the kernel
	OtherCPU           float64        `json:"other_cpu_cores"`   // approximately: processes other than the target and the generator
	PeakRSS            int64          `json:"peak_rss_bytes"`
	End                ChildStats     `json:"end"`
}

// Latency summarises a distribution, in milliseconds.
type Latency struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func latency(ns []int64) Latency {
	if len(ns) == 0 {
		return Latency{}
	}
	slices.Sort(ns)
	pct := func(p float64) float64 {
		i := int(p*float64(len(ns))+0.999999) - 1 // nearest rank
		return float64(ns[max(0, min(i, len(ns)-1))]) / 1e6
	}
	var sum float64
	for _, v := range ns {
		sum += float64(v)
	}
	return Latency{N: len(ns), P50: pct(0.50), P99: pct(0.99), Max: float64(ns[len(ns)-1]) / 1e6, Mean: sum / float64(len(ns)) / 1e6}
}

func (r *runState) report(cfg Config, window time.Duration) *RunReport {
	rr := &RunReport{Rate: r.rate, WindowSeconds: window.Seconds(), Messages: len(r.msgs), Skipped: r.skipped.Load()}
	end := r.end()
	var acc []int64
	for i, at := range r.acceptedAt {
		if at == 0 {
			if f := r.failure[i]; f != "" {
				if rr.Failures == nil {
					rr.Failures = map[string]int{}
				}
				rr.Failures[f]++
			}
			continue
		}
		rr.Accepted++
		if at <= end {
			rr.AcceptedInWindow++
		}
		acc = append(acc, at-r.due(int32(i)))
	}
	rr.AcceptedPerSec = float64(rr.AcceptedInWindow) / cfg.Duration.Seconds()
	rr.AcceptLatency = latency(acc)
	r.mu.Lock()
	defer r.mu.Unlock()
	rr.ExpectedDeliveries = int64(rr.Accepted * cfg.GroupSize)
	rr.Deliveries, rr.DeliveriesInWindow = r.deliveries, r.inWindow
	rr.DeliveriesPerSec = float64(r.inWindow) / cfg.Duration.Seconds()
	if rr.ExpectedDeliveries > 0 {
		rr.Delivered = float64(r.deliveries) / float64(rr.ExpectedDeliveries)
	}
	rr.DeliveryLatency = latency(slices.Clone(r.latencies))
	rr.Duplicates, rr.Unknown = r.duplicates, r.unknown
	rr.AcksSent, rr.AcksDropped = r.acksSent.Load(), r.acksDropped.Load()
	return rr
}

// Check is one of the targets, judged.
type Check struct {
	Target string `json:"target"`
	Result string `json:"result"` // met, missed, not measured
	Detail string `json:"detail"`
}

// Targets from the issue.
const (
	targetRatio     = 0.5
	targetP99Rate   = 5000
	targetP99       = 50.0 // ms
	targetDevices   = 12000
	targetMemory    = 1 << 30
	sustainFraction = 0.98 // accepted/s at least this share of the offered rate counts as sustained
)

func (rep *Report) target(name string) *TargetReport {
	for i := range rep.Targets {
		if rep.Targets[i].Name == name {
			return &rep.Targets[i]
		}
	}
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

func (rep *Report) evaluate() {
	srv, base := rep.target(TargetServer), rep.target(TargetBaseline)
	if srv != nil && base != nil {
		for i, sr := range srv.Runs {
			br := base.Runs[i]
			ratio := 0.0
			if br.DeliveriesPerSec > 0 {
				ratio = sr.DeliveriesPerSec / br.DeliveriesPerSec
			}
			rep.Checks = append(rep.Checks, Check{
				Target: fmt.Sprintf("deliveries/s at least half the baseline's, at %d msg/s offered", sr.Rate),
				Result: verdict(ratio >= targetRatio),
				Detail: fmt.Sprintf("server %.0f/s, baseline %.0f/s: %.0f%%", sr.DeliveriesPerSec, br.DeliveriesPerSec, 100*ratio),
			})
		}
	} else {
		rep.Checks = append(rep.Checks, Check{Target: "deliveries/s at least half the baseline's", Result: "not measured", Detail: "needs both targets"})
	}
	p99 := Check{Target: fmt.Sprintf("p99 delivery under %.0f ms at %d msg/s", targetP99, targetP99Rate), Result: "not measured",
		Detail: fmt.Sprintf("no server run at %d msg/s or more", targetP99Rate)}
	if srv != nil {
		for _, sr := range srv.Runs {
			if sr.Rate < targetP99Rate {
				continue
			}
			sustained := sr.AcceptedPerSec >= sustainFraction*float64(sr.Rate)
			ok := sustained && sr.DeliveryLatency.P99 < targetP99 && sr.Delivered >= 0.999
			p99.Result = verdict(ok)
			p99.Detail = fmt.Sprintf("offered %d msg/s: accepted %.0f/s, delivered %.1f%%, p99 %s", sr.Rate, sr.AcceptedPerSec, 100*sr.Delivered, ms(sr.DeliveryLatency.P99))
			if !sustained {
				p99.Detail += " (the rate was not sustained)"
			}
			break
		}
	}
	rep.Checks = append(rep.Checks, p99)
	mem := Check{Target: fmt.Sprintf("server memory under 1 GiB with %d devices connected", targetDevices), Result: "not measured",
		Detail: fmt.Sprintf("this run connected %d devices", rep.Config.Devices)}
	if srv != nil {
		peak := srv.Idle.RSS
		for _, r := range srv.Runs {
			peak = max(peak, r.PeakRSS)
		}
		if rep.Config.Devices >= targetDevices {
			mem.Result = verdict(srv.Idle.RSS < targetMemory && peak < targetMemory)
		}
		mem.Detail += fmt.Sprintf("; server RSS idle %s, peak under load %s", mib(srv.Idle.RSS), mib(peak))
	}
	rep.Checks = append(rep.Checks, mem)
}

func ms(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case v < 1000:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f s", v/1000)
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

func failures(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%d × %s", m[k], k))
	}
	return strings.Join(parts, "; ")
}

// WriteTable writes the report as text.
func (rep *Report) WriteTable(w io.Writer) error {
	c := rep.Config
	fmt.Fprintf(w, "candor-load: %d devices in %d groups of %d (%d senders each), %s per rate, acks: %s, %d-byte messages (%d-byte MLSMessages)\n",
		c.Devices, c.Groups, c.GroupSize, c.SendersPerGroup, c.Duration, c.Ack, c.MessageBytes, rep.Setup.CiphertextBytes)
	if len(c.TargetEnv) > 0 {
		fmt.Fprintf(w, "target environment: %s\n", strings.Join(c.TargetEnv, " "))
	}
	fmt.Fprintf(w, "machine: %s\n", rep.Machine)
	fmt.Fprintf(w, "setup: enrolment %.1fs (store), groups %.1fs (API, real MLS), encryption %.1fs (%d messages)\n\n",
		rep.Setup.EnrolSeconds, rep.Setup.GroupsSeconds, rep.Setup.EncryptSeconds, rep.Setup.Messages)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(label string, f func(t *TargetReport) string) {
		fmt.Fprintf(tw, "%s\t", label)
		for i := range rep.Targets {
			fmt.Fprintf(tw, "%s\t", f(&rep.Targets[i]))
		}
		fmt.Fprintln(tw)
	}
	row(fmt.Sprintf("%d devices connected", c.Devices), func(t *TargetReport) string { return t.Name })
	row("connect time", func(t *TargetReport) string { return fmt.Sprintf("%.1f s", t.ConnectSeconds) })
	row("idle RSS", func(t *TargetReport) string { return mib(t.Idle.RSS) })
	row("idle Go heap live (after GC)", func(t *TargetReport) string { return mib(t.Idle.HeapLive) })
	row("idle goroutine stacks", func(t *TargetReport) string { return mib(t.Idle.Stacks) })
	row("idle Go runtime total", func(t *TargetReport) string { return mib(t.Idle.GoTotal) })
	row("idle goroutines", func(t *TargetReport) string { return strconv.FormatInt(t.Idle.Goroutines, 10) })
	for ri, rate := range c.Rates {
		row("", func(*TargetReport) string { return "" })
		run := func(f func(r *RunReport) string) func(t *TargetReport) string {
			return func(t *TargetReport) string { return f(&t.Runs[ri]) }
		}
		row(fmt.Sprintf("offered %d msg/s", rate), func(t *TargetReport) string { return t.Name })
		row("messages due", run(func(r *RunReport) string { return strconv.Itoa(r.Messages) }))
		row("not sent (sender queue full)", run(func(r *RunReport) string { return strconv.FormatInt(r.Skipped, 10) }))
		row("accepted (200)", run(func(r *RunReport) string { return strconv.Itoa(r.Accepted) }))
		row("accepted/s (in window)", run(func(r *RunReport) string { return fmt.Sprintf("%.0f", r.AcceptedPerSec) }))
		row("failed", run(func(r *RunReport) string { return strconv.Itoa(r.Messages - r.Accepted) }))
		row("accept latency p50", run(func(r *RunReport) string { return ms(r.AcceptLatency.P50) }))
		row("accept latency p99", run(func(r *RunReport) string { return ms(r.AcceptLatency.P99) }))
		row("deliveries/s (in window)", run(func(r *RunReport) string { return fmt.Sprintf("%.0f", r.DeliveriesPerSec) }))
		row("delivered (of accepted × group)", run(func(r *RunReport) string { return fmt.Sprintf("%.2f%%", 100*r.Delivered) }))
		row("delivery latency p50", run(func(r *RunReport) string { return ms(r.DeliveryLatency.P50) }))
		row("delivery latency p99", run(func(r *RunReport) string { return ms(r.DeliveryLatency.P99) }))
		row("delivery latency max", run(func(r *RunReport) string { return ms(r.DeliveryLatency.Max) }))
		row("duplicate entries", run(func(r *RunReport) string { return strconv.FormatInt(r.Duplicates, 10) }))
		row("acks sent", run(func(r *RunReport) string { return strconv.FormatInt(r.AcksSent, 10) }))
		row("target CPU (cores)", run(func(r *RunReport) string { return fmt.Sprintf("%.2f", r.TargetCPU) }))
		row("load generator CPU (cores)", run(func(r *RunReport) string { return fmt.Sprintf("%.2f", r.GeneratorCPU) }))
		row("machine busy (cores)", run(func(r *RunReport) string { return fmt.Sprintf("%.2f", r.Machine.Busy) }))
		row("  of which softirq (network)", run(func(r *RunReport) string { return fmt.Sprintf("%.2f", r.Machine.SoftIRQ) }))
		row("machine iowait (cores)", run(func(r *RunReport) string { return fmt.Sprintf("%.2f", r.Machine.IOWait) }))
		row("other processes (cores, approx.)", run(func(r *RunReport) string { return fmt.Sprintf("%.2f", r.OtherCPU) }))
		row("target peak RSS", run(func(r *RunReport) string { return mib(r.PeakRSS) }))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, t := range rep.Targets {
		for ri, r := range t.Runs {
			if len(r.Failures) > 0 {
				fmt.Fprintf(w, "%s at %d msg/s, failures: %s\n", t.Name, c.Rates[ri], failures(r.Failures))
			}
		}
		if t.Reconnects > 0 || len(t.StreamCloses) > 0 {
			fmt.Fprintf(w, "%s: streams reconnected %d times;", t.Name, t.Reconnects)
			for _, k := range slices.Sorted(maps.Keys(t.StreamCloses)) {
				fmt.Fprintf(w, " %d × %s;", t.StreamCloses[k], k)
			}
			fmt.Fprintln(w)
		}
		if t.LogLines > 0 {
			fmt.Fprintf(w, "%s logged %d warnings or errors; the first: %s\n", t.Name, t.LogLines, t.FirstLogLine)
		}
	}
	fmt.Fprintln(w, "targets:")
	for _, ch := range rep.Checks {
		fmt.Fprintf(w, "  [%s] %s: %s\n", ch.Result, ch.Target, ch.Detail)
	}
	return nil
}

func machineFacts() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemTotal = n << 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		m.FileLimit = lim.Max
	}
	return m
}

// SystemCPU is the whole machine's CPU use over a window, in cores, from
// /proc/stat: what the two processes account for plus the kernel's work
// on their behalf (loopback TCP runs partly in softirq).
type SystemCPU struct {
	Busy    float64 `json:"busy"` // everything but idle and iowait
	User    float64 `json:"user"`
	System  float64 `json:"system"`
	SoftIRQ float64 `json:"softirq"`
	IOWait  float64 `json:"iowait"`
}

// systemTicks are /proc/stat's first line, in USER_HZ ticks.
type systemTicks struct {
	user, nice, system, idle, iowait, irq, softirq, steal int64
}

func readSystemCPU() (systemTicks, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return systemTicks{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return systemTicks{}, fmt.Errorf("/proc/stat does not parse")
	}
	v := make([]int64, 8)
	for i := range v {
		v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
	}
	return systemTicks{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}, nil
}

func (t systemTicks) sub(o systemTicks, window time.Duration) SystemCPU {
	cores := func(ticks int64) float64 { return float64(ticks) / clockTicks / window.Seconds() }
	user := t.user - o.user + t.nice - o.nice
	sys := t.system - o.system + t.irq - o.irq
	soft := t.softirq - o.softirq
	return SystemCPU{
		Busy:    cores(user + sys + soft + t.steal - o.steal),
		User:    cores(user),
		System:  cores(sys),
		SoftIRQ: cores(soft),
		IOWait:  cores(t.iowait - o.iowait),
	}
}
