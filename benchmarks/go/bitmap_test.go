package main

import (
	"math/rand"
	"testing"
)

func TestServiceRange(t *testing.T) {
	cases := []struct {
		ipv6             bool
		hostBits         int
		wantMax, wantOff int
	}{
		{false, 8, 254, 16},       // /24
		{false, 2, 2, 0},          // /30
		{false, 0, 0, 0},          // /32
		{false, 5, 30, 16},        // /27
		{false, 10, 1022, 64},     // /22
		{false, 20, 1048574, 256}, // /12
		{true, 16, 65535, 256},    // /112
		{true, 64, 65535, 256},    // /64: only the first 65,536 addresses
		{true, 1, 1, 0},           // /127
		{true, 6, 63, 16},         // /122
	}
	for _, c := range cases {
		max, off := serviceRange(c.ipv6, c.hostBits)
		if max != c.wantMax || off != c.wantOff {
			t.Errorf("serviceRange(%v, %d) = %d, %d; want %d, %d",
				c.ipv6, c.hostBits, max, off, c.wantMax, c.wantOff)
		}
	}
}

// A /25 (max 126, offset 16): dynamic allocation fills slots 16-125 before
// touching 0-15, then fills those, then reports full.
func TestStaticBandFillsLast(t *testing.T) {
	max, offset := serviceRange(false, 7)
	b := newAllocationBitmap(max, randomScanWithOffset{rng: rand.New(rand.NewSource(3)), offset: offset})
	for i := 0; i < max-offset; i++ {
		slot, ok := b.AllocateNext()
		if !ok || slot < offset {
			t.Fatalf("allocation %d gave %d, %v; want a slot of the upper band", i, slot, ok)
		}
	}
	seen := map[int]bool{}
	for i := 0; i < offset; i++ {
		slot, ok := b.AllocateNext()
		if !ok || slot >= offset || seen[slot] {
			t.Fatalf("allocation in the static band gave %d, %v", slot, ok)
		}
		seen[slot] = true
	}
	if _, ok := b.AllocateNext(); ok {
		t.Fatal("a full bitmap allocated")
	}
}

func TestRandomScanTakesEverySlotOnce(t *testing.T) {
	b := newAllocationBitmap(1000, randomScan{rng: rand.New(rand.NewSource(5))})
	seen := map[int]bool{}
	for i := 0; i < 1000; i++ {
		slot, ok := b.AllocateNext()
		if !ok || slot < 0 || slot >= 1000 || seen[slot] {
			t.Fatalf("allocation %d gave %d, %v", i, slot, ok)
		}
		seen[slot] = true
	}
	if _, ok := b.AllocateNext(); ok || b.Used() != 1000 {
		t.Fatal("a full bitmap allocated")
	}
	b.Release(500)
	b.Release(500)
	if b.Used() != 999 {
		t.Fatalf("used = %d after releasing one slot twice", b.Used())
	}
	if slot, ok := b.AllocateNext(); !ok || slot != 500 {
		t.Fatalf("the only free slot is 500, got %d, %v", slot, ok)
	}
	if b.Allocate(500) || b.Allocate(-1) || b.Allocate(1000) {
		t.Fatal("Allocate took a used or out-of-range slot")
	}
}
