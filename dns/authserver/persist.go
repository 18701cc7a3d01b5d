package authserver

import (
	"bytes"
	"fmt"

	"appnet/dns/zone"
	"appnet/internal/atomicfile"
)

// writeZoneFile makes the UPDATE that produced z durable (Server.Persist):
// the zone is written in master-file form to a temporary file beside
// z.File, synced, renamed over z.File and the folder synced, so that
// after a crash the file holds either the old zone or the new one, never
// a part. Comments and $-directives of a hand-written file are not kept.
func writeZoneFile(z *zone.Zone) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "; zone %s, serial %d: written by appnet after a dynamic update (RFC 2136)\n", z.Origin, z.SOA.Serial)
	for _, rr := range z.Records() {
		b.WriteString(rr.String())
		b.WriteByte('\n')
	}
	if err := atomicfile.Write(z.File, b.Bytes(), true); err != nil {
		return fmt.Errorf("authserver: writing %s: %w", z.File, err)
	}
	return nil
}
