package origin

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"appnet/internal/atomicfile"
)

// The cart demo's limits and cookie.
const (
	CartCookie   = "cart"
	MaxCarts     = 10000
	MaxCartItems = 100
	MaxItemLen   = 100
	cartMaxAge   = 30 * 24 * time.Hour
)

// carts is the course's shopping-cart example: state the server keeps per
// client ID, found again through the cookie the client sends back.
type carts struct {
	file string

	mu      sync.Mutex
	byID    map[string][]string
	version uint64

	saveMu sync.Mutex // orders writes of the file (guards the file, not the map)
	saved  uint64
}

func loadCarts(file string) (*carts, error) {
	c := &carts{file: file, byID: map[string][]string{}}
	if file == "" {
		return c, nil
	}
	b, err := os.ReadFile(file)
	switch {
	case os.IsNotExist(err):
		return c, nil
	case err != nil:
		return nil, fmt.Errorf("origin: carts: %w", err)
	}
	if err := json.Unmarshal(b, &c.byID); err != nil {
		return nil, fmt.Errorf("origin: carts: %s: %w", file, err)
	}
	return c, nil
}

func (c *carts) get(id string) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	items, ok := c.byID[id]
	return append([]string(nil), items...), ok
}

// update changes the cart id with f and writes the file before it returns,
// so an answered request survives a restart.
func (c *carts) update(id string, f func([]string) ([]string, error)) ([]string, error) {
	c.mu.Lock()
	items, err := f(c.byID[id])
	if err == nil {
		if _, ok := c.byID[id]; !ok && len(c.byID) >= MaxCarts {
			err = fmt.Errorf("too many carts")
		}
	}
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	c.byID[id] = items
	c.version++
	v := c.version
	snap, merr := json.Marshal(c.byID)
	out := append([]string(nil), items...)
	c.mu.Unlock()
	if merr != nil || c.file == "" {
		return out, merr
	}
	return out, c.save(v, snap)
}

// save writes snapshot v unless a newer one is already on disk: write a
// temporary file, sync it, rename it over the old one.
func (c *carts) save(v uint64, snap []byte) error {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	if v <= c.saved {
		return nil
	}
	if err := atomicfile.Write(c.file, snap, true); err != nil {
		return fmt.Errorf("origin: carts: %w", err)
	}
	c.saved = v
	return nil
}

func newCartID() string {
	b := make([]byte, 16)
	rand.Read(b) //nolint:errcheck // never fails
	return hex.EncodeToString(b)
}

func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// serveCart is /cart: GET shows the cart, POST with item=NAME adds to it,
// DELETE empties it. A client without a known cart ID is given a new one
// with Set-Cookie (RFC 6265 §4.1), HttpOnly and SameSite=Lax.
func (s *Server) serveCart(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "private, no-store")
	id := ""
	if ck, err := r.Cookie(CartCookie); err == nil && validID(ck.Value) {
		if _, ok := s.carts.get(ck.Value); ok {
			id = ck.Value
		}
	}
	fresh := id == ""
	if fresh {
		id = newCartID()
	}
	var items []string
	var err error
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if fresh {
			items, err = s.carts.update(id, func(old []string) ([]string, error) { return []string{}, nil })
		} else {
			items, _ = s.carts.get(id)
		}
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		item := strings.TrimSpace(r.PostFormValue("item"))
		if item == "" || len(item) > MaxItemLen || strings.ContainsFunc(item, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
			http.Error(w, fmt.Sprintf("400 give item=NAME (1 to %d printable characters)", MaxItemLen), http.StatusBadRequest)
			return
		}
		items, err = s.carts.update(id, func(old []string) ([]string, error) {
			if len(old) >= MaxCartItems {
				return nil, fmt.Errorf("the cart is full (%d items)", MaxCartItems)
			}
			return append(append([]string(nil), old...), item), nil
		})
	case http.MethodDelete:
		items, err = s.carts.update(id, func([]string) ([]string, error) { return []string{}, nil })
	default:
		w.Header().Set("Allow", "GET, HEAD, POST, DELETE")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err != nil {
		s.cfg.Logger.Warn("cart", "err", err)
		http.Error(w, "503 "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if fresh {
		http.SetCookie(w, &http.Cookie{Name: CartCookie, Value: id, Path: "/cart", MaxAge: int(cartMaxAge.Seconds()),
			HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var b strings.Builder
	fmt.Fprintf(&b, "cart %s: %d items\n", id, len(items))
	for _, it := range items {
		b.WriteString(it + "\n")
	}
	if r.Method != http.MethodHead {
		w.Write([]byte(b.String())) //nolint:errcheck
	}
}
