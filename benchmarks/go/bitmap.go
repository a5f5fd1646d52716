// A re-creation of Kubernetes' Service IP bitmap allocator, written from its
// behaviour (kubernetes/kubernetes pkg/registry/core/service/allocator and
// pkg/registry/core/service/ipallocator), so that our Python pools can be
// timed beside the structure they replace, filled the same way.
//
// What carries over from Kubernetes (facts, not code):
//   - the allocated set is one math/big.Int, bit i set = slot i used, and
//     every operation runs under one sync.Mutex;
//   - AllocateNext draws a uniformly random start and tests slot after slot
//     with big.Int.Bit, wrapping at the end, until a free one turns up (the
//     "random scan" strategy);
//   - since KEP-3070 (Service IP static subrange, GA in 1.26) the first
//     `offset` slots are a static band: the random scan runs over
//     [offset, max) first and over [0, offset) only when that is full;
//   - a Service range of size n gives max = n - 2 for IPv4 (network and
//     broadcast excluded) and min(n, 65536) - 1 for IPv6 (network excluded,
//     only the first 65,536 addresses ever used); offset = 0 for n <= 16,
//     else n/16 clamped to [16, 256].
package main

import (
	"math/big"
	"math/rand"
	"sync"
)

// scanStrategy picks a free slot of the set, or reports that there is none.
type scanStrategy interface {
	pick(allocated *big.Int, max, count int) (int, bool)
}

// randomScan is the strategy without a static band: a random start over the
// whole range, then a linear scan with wrap-around.
type randomScan struct {
	rng *rand.Rand
}

func (s randomScan) pick(allocated *big.Int, max, count int) (int, bool) {
	if count >= max {
		return 0, false
	}
	return scanFrom(allocated, 0, max, s.rng.Intn(max))
}

// randomScanWithOffset is the KEP-3070 strategy: the upper band [offset, max)
// first, from a random start, then the static band [0, offset).
type randomScanWithOffset struct {
	rng    *rand.Rand
	offset int
}

func (s randomScanWithOffset) pick(allocated *big.Int, max, count int) (int, bool) {
	if count >= max {
		return 0, false
	}
	if upper := max - s.offset; upper > 0 {
		if slot, ok := scanFrom(allocated, s.offset, upper, s.rng.Intn(upper)); ok {
			return slot, true
		}
	}
	if s.offset > 0 {
		return scanFrom(allocated, 0, s.offset, s.rng.Intn(s.offset))
	}
	return 0, false
}

// scanFrom tests the slots base+start, base+start+1, ... of the band
// [base, base+size), wrapping once, one big.Int.Bit call per slot: the linear
// scan whose length the fill pattern decides.
func scanFrom(allocated *big.Int, base, size, start int) (int, bool) {
	for i := 0; i < size; i++ {
		slot := base + (start+i)%size
		if allocated.Bit(slot) == 0 {
			return slot, true
		}
	}
	return 0, false
}

// allocationBitmap is the allocator: the set, its count, its size and the
// strategy, guarded by one mutex.
type allocationBitmap struct {
	mu        sync.Mutex
	strategy  scanStrategy
	allocated *big.Int
	count     int
	max       int
}

func newAllocationBitmap(max int, strategy scanStrategy) *allocationBitmap {
	return &allocationBitmap{strategy: strategy, allocated: big.NewInt(0), max: max}
}

// AllocateNext takes a free slot chosen by the strategy.
func (b *allocationBitmap) AllocateNext() (int, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	slot, ok := b.strategy.pick(b.allocated, b.max, b.count)
	if !ok {
		return 0, false
	}
	b.count++
	b.allocated.SetBit(b.allocated, slot, 1)
	return slot, true
}

// Allocate takes the given slot if it is free.
func (b *allocationBitmap) Allocate(slot int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if slot < 0 || slot >= b.max || b.allocated.Bit(slot) == 1 {
		return false
	}
	b.count++
	b.allocated.SetBit(b.allocated, slot, 1)
	return true
}

// Release frees a slot; releasing a free slot does nothing.
func (b *allocationBitmap) Release(slot int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.allocated.Bit(slot) == 0 {
		return
	}
	b.allocated.SetBit(b.allocated, slot, 0)
	b.count--
}

// Used is the number of allocated slots.
func (b *allocationBitmap) Used() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count
}

// serviceRange is what ipallocator derives from a Service CIDR with hostBits
// host bits: the number of usable slots and the size of the static band.
func serviceRange(ipv6 bool, hostBits int) (max, offset int) {
	// Past 2**20 addresses both answers stop growing (an IPv6 range is cut
	// to 65,536 addresses, the band to 256 slots, and kube-apiserver refuses
	// larger IPv4 ranges), so capping here only keeps 1<<hostBits in an int.
	if hostBits > 20 && ipv6 {
		hostBits = 20
	}
	size := 1 << uint(hostBits)
	switch {
	case ipv6 && size > 65536:
		max = 65535
	case ipv6:
		max = size - 1
	case size >= 2:
		max = size - 2
	}
	switch {
	case size <= 16:
		offset = 0
	case size/16 < 16:
		offset = 16
	case size/16 > 256:
		offset = 256
	default:
		offset = size / 16
	}
	return max, offset
}
