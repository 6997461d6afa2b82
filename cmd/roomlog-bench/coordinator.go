package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/roomlog/roomlog/internal/procstat"
)

// Result is one run, written as JSON and read back by the report.
type Result struct {
	System    string    `json:"system"`
	Scenario  string    `json:"scenario"`
	Proto     string    `json:"proto"`
	URLs      []string  `json:"urls"`
	Started   time.Time `json:"started"`
	Command   string    `json:"command"`
	Procs     int       `json:"procs"`
	Conns     int       `json:"conns"`
	Rooms     int       `json:"rooms"`
	Pubs      int       `json:"publishers"`
	Rate      float64   `json:"rate_target"`
	Size      int       `json:"size"`
	Warmup    float64   `json:"warmup_s"`
	Duration  float64   `json:"duration_s"`
	Churn     float64   `json:"churn_target"`
	KillName  string    `json:"kill,omitempty"`
	KillAtSec float64   `json:"kill_at_s,omitempty"`

	Connected     int `json:"connected"`
	ConnectFailed int `json:"connect_failed"`
	// ConnectErrors are the first connections' reasons for failing
	// (three attempts each); their members are left out of the loss count.
	ConnectErrors  []string `json:"connect_errors,omitempty"`
	ConnectSeconds float64  `json:"connect_s"`
	ConnectRate    float64  `json:"connect_rate"`

	Counts               // summed over the workers
	PublishRate  float64 `json:"publish_rate"`
	DeliveryRate float64 `json:"delivery_rate"`
	ChurnRate    float64 `json:"churn_rate"`

	Latency    Latency `json:"latency_ms"`
	AckLatency Latency `json:"ack_latency_ms"` // publish written → its ack read (the log has it, for roomlog)

	Servers          []ProcStat `json:"servers"`
	ServerCPUSeconds float64    `json:"server_cpu_s"`
	ServerCPUCores   float64    `json:"server_cpu_cores"`
	DeliveriesPerCPU float64    `json:"deliveries_per_server_cpu_s"`
	ServerRSSBaseKB  int64      `json:"server_rss_base_kb"`
	ServerRSSConnKB  int64      `json:"server_rss_connected_kb"`
	ServerRSSEndKB   int64      `json:"server_rss_end_kb"`
	RSSPerConnKiB    float64    `json:"rss_per_conn_kib"`
	GeneratorCPUSec  float64    `json:"generator_cpu_s"`
	GeneratorRSSKB   int64      `json:"generator_rss_kb"`
}

// Latency percentiles in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// ProcStat is one server process over the measured window.
type ProcStat struct {
	Name       string  `json:"name"`
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_s"`
	RSSBaseKB  int64   `json:"rss_base_kb"`
	RSSConnKB  int64   `json:"rss_connected_kb"`
	RSSEndKB   int64   `json:"rss_end_kb"`
	RSSMaxKB   int64   `json:"rss_max_kb"`
	Killed     bool    `json:"killed,omitempty"`

	cpuStart, cpuLast float64
}

// procSample reads utime+stime (seconds) and VmRSS (KiB) of pid; ok is
// false when the process is gone. A missing VmRSS (a zombie) reads as 0.
func procSample(pid int) (cpu float64, rssKB int64, ok bool) {
	cpu, err := procstat.CPUSeconds(pid)
	if err != nil {
		return 0, 0, false
	}
	st, _ := procstat.ReadStatus(pid)
	return cpu, st.RSS / 1024, true
}

func parsePIDs(list, file string) ([]*ProcStat, error) {
	var out []*ProcStat
	add := func(name, pid string) error {
		n, err := strconv.Atoi(strings.TrimSpace(pid))
		if err != nil {
			return fmt.Errorf("bad pid %q for %s", pid, name)
		}
		out = append(out, &ProcStat{Name: strings.TrimSpace(name), PID: n})
		return nil
	}
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		name, pid, ok := strings.Cut(p, "=")
		if !ok {
			name, pid = "server", p
		}
		if err := add(name, pid); err != nil {
			return nil, err
		}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) == 2 {
				if err := add(f[0], f[1]); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

type workerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan partial
}

func runCoordinator(args []string) error {
	cfg, err := parseConfig("run", args, false)
	if err != nil {
		return err
	}
	cfg.RunID = strconv.FormatInt(time.Now().UnixMilli()%100000000, 36)
	servers, err := parsePIDs(cfg.ServerPIDs, cfg.PIDFile)
	if err != nil {
		return err
	}
	res := &Result{
		System: cfg.System, Scenario: cfg.Scenario, Proto: cfg.Proto, URLs: cfg.URLs, Started: time.Now().UTC(),
		Command: "roomlog-bench run " + strings.Join(args, " "), Procs: cfg.Procs,
		Conns: cfg.Conns, Rooms: cfg.Rooms, Pubs: cfg.Publishers, Rate: cfg.Rate, Size: cfg.Size,
		Warmup: cfg.Warmup.Seconds(), Duration: cfg.Duration.Seconds(), Churn: cfg.Churn,
		KillName: cfg.KillName,
	}
	if cfg.KillName != "" {
		res.KillAtSec = cfg.KillAt.Seconds()
	}
	var kill *ProcStat
	for _, s := range servers {
		_, s.RSSBaseKB, _ = procSample(s.PID)
		if s.Name == cfg.KillName {
			kill = s
		}
	}
	if cfg.KillName != "" && kill == nil {
		return fmt.Errorf("--kill %q: no such name in the server list", cfg.KillName)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout+30*time.Second)
	defer cancel()

	// Start the workers.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var workers []*workerProc
	defer func() {
		for _, w := range workers {
			if w.cmd.ProcessState == nil && w.cmd.Process != nil {
				_ = w.cmd.Process.Kill()
			}
		}
	}()
	for i := 0; i < cfg.Procs; i++ {
		cmd := exec.CommandContext(ctx, self, append([]string{"worker"}, cfg.workerArgs(i)...)...)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		wp := &workerProc{cmd: cmd, stdin: stdin, lines: make(chan partial, 2)}
		go func() {
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 1<<20), 64<<20)
			for sc.Scan() {
				var p partial
				if json.Unmarshal(sc.Bytes(), &p) == nil {
					wp.lines <- p
				}
			}
			close(wp.lines)
		}()
		workers = append(workers, wp)
	}
	next := func(wp *workerProc, want string) (partial, error) {
		select {
		case p, ok := <-wp.lines:
			if !ok {
				return p, fmt.Errorf("worker exited before %q", want)
			}
			if p.Type != want {
				return p, fmt.Errorf("worker sent %q, want %q", p.Type, want)
			}
			return p, nil
		case <-ctx.Done():
			return partial{}, fmt.Errorf("timed out waiting for workers (%s)", want)
		}
	}

	// Connect phase.
	var cStart, cEnd int64 = math.MaxInt64, 0
	for _, wp := range workers {
		p, err := next(wp, "ready")
		if err != nil {
			return err
		}
		res.Connected += p.Connected
		res.ConnectFailed += p.ConnectFailed
		res.ConnectErrors = addSamples(res.ConnectErrors, p.ConnectErrors)
		cStart = min(cStart, p.ConnectStartNs)
		cEnd = max(cEnd, p.ConnectEndNs)
	}
	res.ConnectSeconds = float64(cEnd-cStart) / 1e9
	if res.ConnectSeconds > 0 {
		res.ConnectRate = float64(res.Connected) / res.ConnectSeconds
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "[%s/%s] "+format+"\n", append([]any{cfg.System, cfg.Scenario}, a...)...)
	}
	logf("%d/%d connected in %.1fs (%.0f/s), %d failed", res.Connected, cfg.Conns, res.ConnectSeconds, res.ConnectRate, res.ConnectFailed)
	for _, e := range res.ConnectErrors {
		logf("connect failed: %s", e)
	}
	time.Sleep(time.Second) // let the servers settle before the connected RSS
	for _, s := range servers {
		_, s.RSSConnKB, _ = procSample(s.PID)
	}

	// Traffic.
	for _, wp := range workers {
		if _, err := io.WriteString(wp.stdin, "go\n"); err != nil {
			return err
		}
	}
	t0 := time.Now()
	winStart, winEnd := t0.Add(cfg.Warmup), t0.Add(cfg.Warmup+cfg.Duration)
	var mu sync.Mutex
	sample := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range servers {
			if cpu, rss, ok := procSample(s.PID); ok && !s.Killed {
				s.cpuLast = cpu
				s.RSSMaxKB = max(s.RSSMaxKB, rss)
			}
		}
	}
	genCPU := func() (cpu float64, rss int64) {
		for _, wp := range workers {
			c, r, _ := procSample(wp.cmd.Process.Pid)
			cpu += c
			rss += r
		}
		return
	}
	stopSampler := make(chan struct{})
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				sample()
			case <-stopSampler:
				return
			}
		}
	}()
	sleepUntil(ctx, winStart)
	sample()
	mu.Lock()
	for _, s := range servers {
		s.cpuStart = s.cpuLast
	}
	mu.Unlock()
	gen0, _ := genCPU()
	if kill != nil {
		sleepUntil(ctx, winStart.Add(cfg.KillAt))
		mu.Lock()
		if cpu, _, ok := procSample(kill.PID); ok {
			kill.cpuLast = cpu
		}
		err := syscall.Kill(kill.PID, syscall.SIGKILL)
		kill.Killed = true
		mu.Unlock()
		logf("killed %s (pid %d) at %.1fs into the window: %v", kill.Name, kill.PID, cfg.KillAt.Seconds(), err)
	}
	sleepUntil(ctx, winEnd)
	sample()
	gen1, genRSS := genCPU()
	close(stopSampler)
	<-samplerDone
	for _, s := range servers {
		s.CPUSeconds = s.cpuLast - s.cpuStart
		if !s.Killed {
			_, s.RSSEndKB, _ = procSample(s.PID)
		}
		res.ServerCPUSeconds += s.CPUSeconds
		res.ServerRSSBaseKB += s.RSSBaseKB
		res.ServerRSSConnKB += s.RSSConnKB
		res.ServerRSSEndKB += s.RSSEndKB
		res.Servers = append(res.Servers, *s)
	}
	res.GeneratorCPUSec = gen1 - gen0
	res.GeneratorRSSKB = genRSS

	// Results.
	h := hdrhistogram.New(1, 600_000_000, 3)
	ah := hdrhistogram.New(1, 600_000_000, 3)
	for _, wp := range workers {
		p, err := next(wp, "result")
		if err != nil {
			return err
		}
		res.Counts.add(&p.Counts)
		if p.Hist != nil {
			h.Merge(hdrhistogram.Import(p.Hist))
		}
		if p.AckHist != nil {
			ah.Merge(hdrhistogram.Import(p.AckHist))
		}
	}
	for _, wp := range workers {
		_ = wp.stdin.Close()
		_ = wp.cmd.Wait()
	}
	d := cfg.Duration.Seconds()
	res.PublishRate = float64(res.PublishedWindow) / d
	res.DeliveryRate = float64(res.DeliveriesWindow) / d
	res.ChurnRate = float64(res.ChurnConnects) / (cfg.Warmup + cfg.Duration).Seconds()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	latency := func(h *hdrhistogram.Histogram) Latency {
		return Latency{
			Count: h.TotalCount(), Mean: h.Mean() / 1000,
			P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
			P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()),
		}
	}
	res.Latency, res.AckLatency = latency(h), latency(ah)
	res.ServerCPUCores = res.ServerCPUSeconds / d
	if res.ServerCPUSeconds > 0 {
		res.DeliveriesPerCPU = float64(res.DeliveriesWindow) / res.ServerCPUSeconds
	}
	if res.Connected > 0 {
		res.RSSPerConnKiB = float64(res.ServerRSSConnKB-res.ServerRSSBaseKB) / float64(res.Connected)
	}

	b, _ := json.MarshalIndent(res, "", "  ")
	if cfg.Out != "" {
		if err := os.WriteFile(cfg.Out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	} else {
		fmt.Println(string(b))
	}
	for _, l := range res.LossSamples {
		fmt.Fprintln(os.Stderr, "lost:", l)
	}
	fmt.Println(markdownHeader())
	fmt.Println(markdownRow(res))
	if res.Connected == 0 {
		return errors.New("no connection succeeded")
	}
	return nil
}

func markdownHeader() string {
	return "| system | conns | rooms | pub/s | deliveries/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | server CPU (cores) | deliveries/CPU-s | RSS/conn KiB | connect/s | lost | dup | ooo | reconnects | ack p50 ms | ack p99 ms |\n" +
		"| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
}

func markdownRow(r *Result) string {
	return fmt.Sprintf("| %s | %d | %d | %.0f | %.0f | %s | %s | %s | %s | %s | %.2f | %.0f | %.1f | %.0f | %d | %d | %d | %d | %s | %s |",
		r.System, r.Connected, r.Rooms, r.PublishRate, r.DeliveryRate,
		fmtMS(r.Latency.P50, r.Latency.Count), fmtMS(r.Latency.P90, r.Latency.Count), fmtMS(r.Latency.P99, r.Latency.Count),
		fmtMS(r.Latency.P999, r.Latency.Count), fmtMS(r.Latency.Max, r.Latency.Count),
		r.ServerCPUCores, r.DeliveriesPerCPU, r.RSSPerConnKiB, r.ConnectRate, r.Lost, r.Dup, r.OOO, r.Reconnects,
		fmtMS(r.AckLatency.P50, r.AckLatency.Count), fmtMS(r.AckLatency.P99, r.AckLatency.Count))
}

func fmtMS(v float64, n int64) string {
	if n == 0 {
		return "–"
	}
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}
