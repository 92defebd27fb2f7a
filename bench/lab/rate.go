package lab

import (
	"fmt"
	"strconv"
	"strings"
)

// Rate is a link rate as tc writes it ("100mbit"), with its value in bits
// per second.
type Rate struct {
	Text string  // as given, passed to tc unchanged
	Bits float64 // bits per second
}

// BytesPerSec is the rate in bytes per second.
func (r Rate) BytesPerSec() float64 { return r.Bits / 8 }

func (r Rate) String() string { return r.Text }

// rateUnits are tc's rate units (tc(8), "RATES"): SI prefixes for
// bit and bps, IEC prefixes with an i, bps meaning bytes per second.
var rateUnits = map[string]float64{
	"":      1,
	"bit":   1,
	"kbit":  1e3,
	"mbit":  1e6,
	"gbit":  1e9,
	"tbit":  1e12,
	"kibit": 1 << 10,
	"mibit": 1 << 20,
	"gibit": 1 << 30,
	"tibit": 1 << 40,
	"bps":   8,
	"kbps":  8e3,
	"mbps":  8e6,
	"gbps":  8e9,
	"tbps":  8e12,
	"kibps": 8 << 10,
	"mibps": 8 << 20,
	"gibps": 8 << 30,
	"tibps": 8 << 40,
}

// ParseRate parses a rate the way tc does: a number and an optional unit
// (bit, kbit, mbit, gbit, tbit, kibit, ..., bps = bytes/s, kbps, mbps, ...).
func ParseRate(s string) (Rate, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], t[i:]
	mult, ok := rateUnits[unit]
	if num == "" || !ok {
		return Rate{}, fmt.Errorf("rate %q: want a number and a tc unit such as 100mbit, 1gbit, 12mbps", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 {
		return Rate{}, fmt.Errorf("rate %q: bad number", s)
	}
	return Rate{Text: t, Bits: v * mult}, nil
}

// burstFor is a tbf bucket for the rate: 256 KiB, or 10 ms of traffic at
// high rates (tbf needs at least rate/HZ).
func burstFor(r Rate) int64 {
	return max(256<<10, int64(r.BytesPerSec()/100))
}
