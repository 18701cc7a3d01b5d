// Package labca is the lab's certificate authority and the TLS settings
// every appnet TLS server shares (../shared/DESIGN.md: TLS). A lab makes
// one CA in its state folder and issues each TLS service a certificate for
// its host name and address, so that curl, swaks, lftp, Python and a
// browser trust the lab once its root is given to them (curl --cacert
// ca.pem), never by turning verification off. A server outside the lab
// takes its certificate from --tls-cert and --tls-key (LoadKeyPair).
//
// Keys are ECDSA P-256, which every TLS stack the lab meets accepts. The
// root is valid for ten years and a leaf for one year, signed with
// SHA-256; leaves carry the names and addresses asked for as subject
// alternative names (RFC 5280 §4.2.1.6), the only names clients check.
package labca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"appnet/internal/atomicfile"
)

// File names of the CA in its folder.
const (
	CertFile = "ca.pem"     // the root certificate: give it to clients
	KeyFile  = "ca-key.pem" // the root's private key (mode 0600)
)

// Validity of what the CA makes.
const (
	RootValidity = 10 * 365 * 24 * time.Hour
	LeafValidity = 365 * 24 * time.Hour
)

// CA is a certificate authority whose root lives in a folder.
type CA struct {
	dir  string
	cert *x509.Certificate
	der  []byte
	key  crypto.Signer

	mu     sync.Mutex
	leaves map[string]*tls.Certificate
}

// Open loads the CA in dir, or makes one there (and dir itself) when dir
// holds none. name is the root's common name ("appnet lab CA").
func Open(dir, name string) (*CA, error) {
	certPEM, cerr := os.ReadFile(filepath.Join(dir, CertFile))
	keyPEM, kerr := os.ReadFile(filepath.Join(dir, KeyFile))
	switch {
	case cerr == nil && kerr == nil:
		return load(dir, certPEM, keyPEM)
	case errors.Is(cerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist):
		return create(dir, name)
	case cerr != nil && !errors.Is(cerr, os.ErrNotExist):
		return nil, fmt.Errorf("labca: %w", cerr)
	case kerr != nil && !errors.Is(kerr, os.ErrNotExist):
		return nil, fmt.Errorf("labca: %w", kerr)
	default:
		return nil, fmt.Errorf("labca: %s holds only one of %s and %s", dir, CertFile, KeyFile)
	}
}

func load(dir string, certPEM, keyPEM []byte) (*CA, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("labca: %s: %w", dir, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("labca: %s: %w", filepath.Join(dir, CertFile), err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("labca: %s: not a CA certificate", filepath.Join(dir, CertFile))
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("labca: %s: the key cannot sign", filepath.Join(dir, KeyFile))
	}
	return &CA{dir: dir, cert: cert, der: pair.Certificate[0], key: key, leaves: map[string]*tls.Certificate{}}, nil
}

func create(dir, name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("labca: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"appnet"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(RootValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("labca: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("labca: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("labca: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("labca: %w", err)
	}
	// The key first: a root on disk without its key would make the next
	// Open fail rather than make a new pair.
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := atomicfile.WritePerm(filepath.Join(dir, KeyFile), keyPEM, 0o600, true); err != nil {
		return nil, fmt.Errorf("labca: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := atomicfile.WritePerm(filepath.Join(dir, CertFile), certPEM, 0o644, true); err != nil {
		return nil, fmt.Errorf("labca: %w", err)
	}
	return &CA{dir: dir, cert: cert, der: der, key: key, leaves: map[string]*tls.Certificate{}}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("labca: no randomness: " + err.Error())
	}
	return n
}

// RootFile returns the path of the root certificate, for clients.
func (ca *CA) RootFile() string { return filepath.Join(ca.dir, CertFile) }

// RootPEM returns the root certificate in PEM.
func (ca *CA) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der})
}

// Pool returns a certificate pool holding only the root, for our own
// clients in the lab and in tests.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Issue returns a certificate for the given DNS names and IP addresses,
// signed by the CA; the first name is also the subject's common name. The
// same set of names is issued once per CA and then reused.
func (ca *CA) Issue(names []string, ips []netip.Addr) (*tls.Certificate, error) {
	if len(names) == 0 && len(ips) == 0 {
		return nil, errors.New("labca: a certificate needs a name or an address")
	}
	k := key(names, ips)
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if c, ok := ca.leaves[k]; ok {
		return c, nil
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("labca: %w", err)
	}
	now := time.Now()
	notAfter := now.Add(LeafValidity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
	}
	if len(names) > 0 {
		tmpl.Subject.CommonName = names[0]
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, leafKey.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("labca: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("labca: %w", err)
	}
	c := &tls.Certificate{Certificate: [][]byte{der, ca.der}, PrivateKey: leafKey, Leaf: leaf}
	ca.leaves[k] = c
	return c, nil
}

// Issued returns how many certificates the CA has issued since Open.
func (ca *CA) Issued() int {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return len(ca.leaves)
}

func key(names []string, ips []netip.Addr) string {
	parts := slices.Clone(names)
	for _, ip := range ips {
		parts = append(parts, ip.String())
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// ServerConfig returns the TLS settings every appnet server uses, serving
// cert: TLS 1.2 at least (RFC 8996 retires 1.0 and 1.1), Go's default
// cipher suites and curves.
func ServerConfig(cert *tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*cert},
	}
}

// LoadKeyPair reads a certificate chain and its key from PEM files (the
// servers' --tls-cert and --tls-key), checking that they belong together.
func LoadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("labca: both a certificate and a key file are needed")
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("labca: %s, %s: %w", certFile, keyFile, err)
	}
	return &c, nil
}
