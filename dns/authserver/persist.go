package authserver

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"appnet/dns/zone"
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
	dir := filepath.Dir(z.File)
	f, err := os.CreateTemp(dir, "."+filepath.Base(z.File)+".*")
	if err != nil {
		return fmt.Errorf("authserver: %w", err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("authserver: writing %s: %w", z.File, err)
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		return fail(err)
	}
	if fi, err := os.Stat(z.File); err == nil {
		f.Chmod(fi.Mode().Perm())
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, z.File); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("authserver: writing %s: %w", z.File, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("authserver: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("authserver: syncing %s: %w", dir, err)
	}
	return nil
}
