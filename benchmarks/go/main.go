// Command k8sbitmap times AllocateNext of the Kubernetes bitmap re-creation
// (bitmap.go) the way benchmarks/bench_hot_path.py times our pools, and
// prints the figures as JSON on stdout.
//
// Method, matching the Python benchmark:
//   - each range is filled with AllocateNext only, from empty to each fill
//     level in turn (0, 50, 99, 99.9 % by default), target =
//     min(int(fill*max), max-1), and measured at each level;
//   - a timed batch is k AllocateNext calls, k = max(1, min(maxBatch,
//     free/10)); an untimed undo releases what the batch took, so every
//     batch starts from the same set;
//   - a figure is the median over the batches of ns per call, less the cost
//     of timing an empty batch; the garbage collector is off while timing.
//
// One departure: near full, the cost of a linear scan depends on where the
// fill left its last free slots, which differs from one fill to the next
// by 2x or more at 2**20 slots. So each range is filled -realizations times
// from empty, with different seeds, and a figure is the median over the
// batches of every fill; the median of each fill is kept as well.
//
// With -uniform it also measures the same ranges filled with a uniformly
// random set (what a figure of ~6.4 µs at 2**20 slots 99.9 % full assumed),
// to show what the fill pattern does to the linear scan.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type settings struct {
	Fills      []float64 `json:"fills"`
	Repeats    int       `json:"repeats"`
	MaxBatch   int       `json:"max_batch"`
	Seed       int64     `json:"seed"`
	Strategies []string  `json:"strategies"`
	Uniform    bool      `json:"uniform"`
	Fillings   int       `json:"realizations"`
}

type row struct {
	CIDR       string  `json:"cidr"`
	Max        int     `json:"max"`
	Offset     int     `json:"offset"`
	Strategy   string  `json:"strategy"`
	FillMethod string  `json:"fill_method"`
	Fill       float64 `json:"fill"`
	Used       int     `json:"used"`
	FillS      float64 `json:"fill_s"`
	Batch      int     `json:"batch"`
	Batches    int     `json:"batches"`
	NS         float64 `json:"ns"`
	NSMin      float64 `json:"ns_min"`
	// The median of each fill's own batches, one per realization.
	NSRealizations []float64 `json:"ns_realizations"`
	samples        []float64
}

type output struct {
	Go              string   `json:"go"`
	GOOS            string   `json:"goos"`
	GOARCH          string   `json:"goarch"`
	TimerOverheadNS float64  `json:"timer_overhead_ns"`
	Settings        settings `json:"settings"`
	Cases           []row    `json:"cases"`
}

func main() {
	var cidrs listFlag
	fills := flag.String("fills", "0,0.5,0.99,0.999", "fill levels, ascending")
	repeats := flag.Int("repeats", 41, "timed batches per figure")
	maxBatch := flag.Int("max-batch", 256, "largest batch")
	seed := flag.Int64("seed", 1, "seed of the random sources")
	strategies := flag.String("strategies", "offset,plain",
		"offset = KEP-3070 static band (Service IPs since 1.26), plain = no band")
	uniform := flag.Bool("uniform", false, "also measure uniformly random fills")
	realizations := flag.Int("realizations", 1, "independent fills of each range")
	flag.Var(&cidrs, "cidr", "a Service range (repeat the flag for several)")
	flag.Parse()
	cfg := settings{Repeats: *repeats, MaxBatch: *maxBatch, Seed: *seed, Uniform: *uniform,
		Fillings: *realizations}
	for _, f := range strings.Split(*fills, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v < 0 || v > 1 {
			fail("bad fill %q", f)
		}
		cfg.Fills = append(cfg.Fills, v)
	}
	for _, s := range strings.Split(*strategies, ",") {
		if s != "offset" && s != "plain" {
			fail("bad strategy %q (offset or plain)", s)
		}
		cfg.Strategies = append(cfg.Strategies, s)
	}
	if len(cidrs) == 0 || cfg.Repeats < 1 || cfg.MaxBatch < 1 || cfg.Fillings < 1 {
		fail("need at least one -cidr, and -repeats, -max-batch, -realizations >= 1")
	}
	out := output{Go: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Settings: cfg}
	out.TimerOverheadNS = timerOverhead()
	warmUp()
	methods := []string{"allocate_next"}
	if cfg.Uniform {
		methods = append(methods, "uniform")
	}
	n := int64(0)
	for _, c := range cidrs {
		_, network, err := net.ParseCIDR(c)
		if err != nil {
			fail("bad -cidr %q: %v", c, err)
		}
		ones, bits := network.Mask.Size()
		max, offset := serviceRange(bits == 128, bits-ones)
		for _, strategy := range cfg.Strategies {
			for _, method := range methods {
				var merged []row
				for r := 0; r < cfg.Fillings; r++ {
					n++
					rows := measureRange(network.String(), max, offset, strategy, method, cfg,
						cfg.Seed*100000+n, out.TimerOverheadNS)
					merged = mergeRealization(merged, rows)
				}
				out.Cases = append(out.Cases, merged...)
			}
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		fail("writing JSON: %v", err)
	}
}

// mergeRealization adds one fill's rows to those of the fills before it:
// the batches are pooled, and the fill's own median kept.
func mergeRealization(merged, rows []row) []row {
	if merged == nil {
		merged = make([]row, len(rows))
		copy(merged, rows)
		for i := range merged {
			merged[i].NSRealizations = []float64{rows[i].NS}
			merged[i].samples = append([]float64(nil), rows[i].samples...)
		}
		return merged
	}
	for i := range merged {
		m := &merged[i]
		m.FillS += rows[i].FillS
		m.samples = append(m.samples, rows[i].samples...)
		sort.Float64s(m.samples)
		m.Batches = len(m.samples)
		m.NS = median(m.samples)
		m.NSMin = m.samples[0]
		m.NSRealizations = append(m.NSRealizations, rows[i].NS)
	}
	return merged
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "k8sbitmap: "+format+"\n", args...)
	os.Exit(2)
}

// measureRange builds one bitmap, fills it level by level and times
// AllocateNext at each level.
func measureRange(cidr string, max, offset int, strategy, method string, cfg settings,
	seed int64, overhead float64) []row {
	var pick scanStrategy
	if strategy == "offset" {
		pick = randomScanWithOffset{rng: rand.New(rand.NewSource(seed)), offset: offset}
	} else {
		offset = 0
		pick = randomScan{rng: rand.New(rand.NewSource(seed))}
	}
	b := newAllocationBitmap(max, pick)
	fillRng := rand.New(rand.NewSource(seed + 1))
	var rows []row
	for _, fill := range cfg.Fills {
		if max < 1 {
			break
		}
		target := int(fill * float64(max))
		if target > max-1 {
			target = max - 1
		}
		t0 := time.Now()
		if method == "uniform" {
			fillUniform(b, offset, target, fillRng)
		} else {
			for b.Used() < target {
				b.AllocateNext()
			}
		}
		fillS := time.Since(t0).Seconds()
		free := max - b.Used()
		k := free / 10
		if k > cfg.MaxBatch {
			k = cfg.MaxBatch
		}
		if k < 1 {
			k = 1
		}
		samples := timeBatches(b, k, cfg.Repeats, overhead)
		rows = append(rows, row{
			CIDR: cidr, Max: max, Offset: offset, Strategy: strategy, FillMethod: method,
			Fill: fill, Used: b.Used(), FillS: fillS, Batch: k, Batches: len(samples),
			NS: median(samples), NSMin: samples[0], samples: samples,
		})
		fmt.Fprintf(os.Stderr, "k8sbitmap %-18s %-6s %-13s %6.1f%% used=%9d %10.0f ns\n",
			cidr, strategy, method, fill*100, b.Used(), median(samples))
	}
	return rows
}

// fillUniform sets random free slots until target are used, as a uniformly
// random set would be, except that the upper band fills before the static
// band, as every dynamic allocation does.
func fillUniform(b *allocationBitmap, offset, target int, rng *rand.Rand) {
	for b.Used() < target {
		lo, size := offset, b.max-offset
		if b.Used() >= size {
			lo, size = 0, offset
		}
		b.Allocate(lo + rng.Intn(size))
	}
}

// timeBatches returns ns per call of repeats batches of k AllocateNext,
// each undone (untimed) by releasing what it took; sorted ascending.
func timeBatches(b *allocationBitmap, k, repeats int, overhead float64) []float64 {
	got := make([]int, k)
	samples := make([]float64, 0, repeats)
	gcPercent := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(gcPercent)
	for r := 0; r < repeats; r++ {
		t0 := time.Now()
		for j := 0; j < k; j++ {
			got[j], _ = b.AllocateNext()
		}
		elapsed := float64(time.Since(t0).Nanoseconds())
		for j := k - 1; j >= 0; j-- {
			b.Release(got[j])
		}
		ns := (elapsed - overhead) / float64(k)
		if ns < 0 {
			ns = 0
		}
		samples = append(samples, ns)
	}
	sort.Float64s(samples)
	return samples
}

// median of an ascending slice.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// timerOverhead is the median cost of timing nothing.
func timerOverhead() float64 {
	costs := make([]float64, 2001)
	for i := range costs {
		t0 := time.Now()
		costs[i] = float64(time.Since(t0).Nanoseconds())
	}
	sort.Float64s(costs)
	return median(costs)
}

// warmUp runs the hot loop for a while before anything is timed, so that
// the first figure does not pay for the clock ramping up.
func warmUp() {
	b := newAllocationBitmap(65534, randomScan{rng: rand.New(rand.NewSource(7))})
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		for i := 0; i < 1000; i++ {
			slot, _ := b.AllocateNext()
			if i%2 == 1 {
				b.Release(slot)
			}
		}
		if b.Used() > 60000 {
			b = newAllocationBitmap(65534, randomScan{rng: rand.New(rand.NewSource(7))})
		}
	}
}
