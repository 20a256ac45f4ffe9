package provenance

// filter is a Bloom filter over the 4-byte windows (grams) of an entry's
// normalised text, one hash per gram and about 16 bits per gram: a value
// whose grams are not all in it cannot occur in the text, so a lookup reads
// a few bits of each entry and searches the text of only the entries that
// may hold the value. Every value that carries provenance is at least
// MinLength bytes long, so it has at least one gram.
type filter []uint64

const gramBits = 16 // filter bits per gram

func newFilter(text string) filter {
	n := max(len(text)-MinLength+1, 1)
	bits := 512
	for bits < n*gramBits {
		bits <<= 1
	}
	f := make(filter, bits/64)
	mask := uint32(bits - 1)
	for i := 0; i+MinLength <= len(text); i++ {
		h := gramHash(text[i:]) & mask
		f[h>>6] |= 1 << (h & 63)
	}
	return f
}

func (f filter) bytes() int { return len(f) * 8 }

// gramHash hashes the first MinLength bytes of s.
func gramHash(s string) uint32 {
	g := uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
	return (g * 0x9E3779B1) >> 7
}

// probes are the grams of a value a lookup checks: up to maxProbes, spread
// evenly over it, first and last included.
type probes struct {
	h [maxProbes]uint32
	n int
}

const maxProbes = 8

func newProbes(v string) probes {
	var p probes
	last := len(v) - MinLength
	if last < 0 {
		return p
	}
	n := min(last+1, maxProbes)
	for i := 0; i < n; i++ {
		pos := 0
		if n > 1 {
			pos = i * last / (n - 1)
		}
		p.h[i] = gramHash(v[pos:])
	}
	p.n = n
	return p
}

// mayHold reports whether the filter may hold every probed gram.
func (f filter) mayHold(p *probes) bool {
	mask := uint32(len(f)*64 - 1)
	for i := 0; i < p.n; i++ {
		h := p.h[i] & mask
		if f[h>>6]&(1<<(h&63)) == 0 {
			return false
		}
	}
	return true
}
