package labca_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"appnet/internal/labca"
	"appnet/internal/testnet"
)

func TestOpenMakesThenLoads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := labca.Open(dir, "test CA")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, labca.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := labca.Open(dir, "ignored")
	if err != nil {
		t.Fatal(err)
	}
	if string(again.RootPEM()) != string(ca.RootPEM()) {
		t.Error("a second Open made a new root instead of loading the first")
	}
	// A leaf of the reloaded CA verifies against the first one's root.
	leaf, err := again.Issue([]string{"mail.crepes.test"}, []netip.Addr{netip.MustParseAddr("127.0.0.40")})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mail.crepes.test", "127.0.0.40"} {
		if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: name}); err != nil {
			t.Errorf("verify %s: %v", name, err)
		}
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "evil.test"}); err == nil {
		t.Error("a leaf verified for a name it was not issued for")
	}
	if same, _ := again.Issue([]string{"mail.crepes.test"}, []netip.Addr{netip.MustParseAddr("127.0.0.40")}); same != leaf {
		t.Error("the same names were issued twice")
	}
}

func TestOpenRefusesHalfACA(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, labca.CertFile), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := labca.Open(dir, "x"); err == nil || !strings.Contains(err.Error(), "only one") {
		t.Fatalf("Open of a folder with a root and no key: %v", err)
	}
}

// TestCurlTrustsTheRoot: an independent TLS client (curl, OpenSSL or
// GnuTLS underneath) verifies a server's leaf with only the root file.
func TestCurlTrustsTheRoot(t *testing.T) {
	curl := testnet.NeedTool(t, "curl")
	ca, err := labca.Open(t.TempDir(), "test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{"www.lab.test"}, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", labca.ServerConfig(leaf))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, 4096)
				c.Read(buf)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	url := "https://www.lab.test:" + itoa(port) + "/"
	out, err := exec.Command(curl, "-sS", "--max-time", "10", "--cacert", ca.RootFile(),
		"--resolve", "www.lab.test:"+itoa(port)+":127.0.0.1", url).CombinedOutput()
	if err != nil || string(out) != "ok" {
		t.Fatalf("curl with the root: %v: %s", err, out)
	}
	// Without the root, curl refuses: the test can fail.
	if out, err := exec.Command(curl, "-sS", "--max-time", "10", "--resolve", "www.lab.test:"+itoa(port)+":127.0.0.1", url).CombinedOutput(); err == nil {
		t.Fatalf("curl trusted the lab without its root: %s", out)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestLoadKeyPair(t *testing.T) {
	if _, err := labca.LoadKeyPair("", ""); err == nil {
		t.Error("LoadKeyPair without files succeeded")
	}
	dir := t.TempDir()
	ca, err := labca.Open(dir, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := labca.LoadKeyPair(ca.RootFile(), filepath.Join(dir, labca.KeyFile)); err != nil {
		t.Errorf("the CA's own pair: %v", err)
	}
}
