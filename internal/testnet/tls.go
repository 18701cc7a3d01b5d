package testnet

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"testing"

	"appnet/internal/labca"
)

// TLS returns a TLS server's settings for the test: a certificate for
// names and 127.0.0.1 from a certificate authority made for the test
// (internal/labca, as the lab does), and a pool trusting that authority,
// for the test's clients.
func TLS(t testing.TB, names ...string) (*tls.Config, *x509.CertPool) {
	t.Helper()
	ca, err := labca.Open(t.TempDir(), "test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(names, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	return labca.ServerConfig(cert), ca.Pool()
}
