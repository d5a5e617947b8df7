// Package tfprovider builds a small real Terraform provider from Go source
// (testdata/botetest, on HashiCorp's terraform-plugin-framework) and
// publishes it the ways an agent without internet access gets providers:
// a filesystem mirror in either documented layout, and a loopback network
// mirror speaking the provider network mirror protocol over HTTPS
// (https://developer.hashicorp.com/terraform/internals/provider-network-mirror-protocol).
//
// The provider is example.com/bote/botetest with two resources:
// botetest_thing (a name kept in state) and botetest_file (a file it
// writes and reads back on refresh, for the drift tests). Its build goes through the go
// build cache, so only the first build on a machine compiles it.
package tfprovider

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Source address parts of the provider.
const (
	Hostname  = "example.com"
	Namespace = "bote"
	Type      = "botetest"
	// Address is its source address in required_providers.
	Address = Hostname + "/" + Namespace + "/" + Type
	// Platform is the platform the tests run on (os_arch).
	Platform = runtime.GOOS + "_" + runtime.GOARCH
)

var (
	buildOnce sync.Once
	built     []byte
	buildErr  error
)

// Binary builds the provider (once per test process) and returns the
// executable's bytes.
func Binary(t testing.TB) []byte {
	t.Helper()
	buildOnce.Do(buildProvider)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// Prebuild starts building the provider in the background, for a
// TestMain whose tests need it later: Binary waits for that build. The
// TestMain calls wait before it exits, so that the build's temporary
// directory is removed.
func Prebuild() (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buildOnce.Do(buildProvider)
	}()
	return func() { <-done }
}

func buildProvider() { built, buildErr = build() }

func build() ([]byte, error) {
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "testdata", "botetest")
	out, err := os.MkdirTemp("", "botetest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	bin := filepath.Join(out, "provider")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	// Its own module, not the workspace's: the provider's dependencies
	// stay out of the platform's build list.
	cmd.Dir, cmd.Env = src, append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cannot build the test provider: %w: %s", err, msg)
	}
	return os.ReadFile(bin)
}

// Pad returns binary grown to size bytes, to stand for a larger provider:
// pseudo-random bytes after the executable (which it never reads), so
// they compress no better than code.
func Pad(exe []byte, size int) []byte {
	if len(exe) >= size {
		return exe
	}
	out := bytes.Clone(exe)
	r := rand.New(rand.NewPCG(1, 2))
	for len(out) < size {
		out = binary.LittleEndian.AppendUint64(out, r.Uint64())
	}
	return out[:size]
}

// packaged holds what Package made, by binary (its bytes' address and
// length) and version: compressing the 25 MB provider takes about a
// second of CPU, and a test packages it for each mirror it serves.
var packaged struct {
	sync.Mutex
	m map[packageKey][]byte
}

type packageKey struct {
	binary  *byte
	size    int
	version string
}

// Package is the provider packaged as Terraform expects: a zip holding
// terraform-provider-botetest_v<version>. It is made once per binary and
// version; the caller must not modify it.
func Package(t testing.TB, binary []byte, version string) []byte {
	t.Helper()
	if len(binary) == 0 {
		return pack(t, binary, version)
	}
	k := packageKey{&binary[0], len(binary), version}
	packaged.Lock()
	defer packaged.Unlock()
	if p, ok := packaged.m[k]; ok {
		return p
	}
	p := pack(t, binary, version)
	if packaged.m == nil {
		packaged.m = map[packageKey][]byte{}
	}
	packaged.m[k] = p
	return p
}

func pack(t testing.TB, binary []byte, version string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	h := &zip.FileHeader{Name: "terraform-provider-" + Type + "_v" + version, Method: zip.Deflate}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err == nil {
		_, err = w.Write(binary)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// archiveName is the package's name in a packed mirror and a network
// mirror.
func archiveName(version string) string {
	return fmt.Sprintf("terraform-provider-%s_%s_%s.zip", Type, version, Platform)
}

// FilesystemMirror writes the provider at version into dir in the packed
// layout (HOSTNAME/NAMESPACE/TYPE/terraform-provider-TYPE_VERSION_TARGET.zip,
// what `terraform providers mirror` writes) or the unpacked one
// (HOSTNAME/NAMESPACE/TYPE/VERSION/TARGET/).
func FilesystemMirror(t testing.TB, dir string, binary []byte, version string, packed bool) {
	t.Helper()
	d := filepath.Join(dir, Hostname, Namespace, Type)
	var err error
	if packed {
		if err = os.MkdirAll(d, 0o755); err == nil {
			err = os.WriteFile(filepath.Join(d, archiveName(version)), Package(t, binary, version), 0o644)
		}
	} else {
		d = filepath.Join(d, version, Platform)
		if err = os.MkdirAll(d, 0o755); err == nil {
			err = os.WriteFile(filepath.Join(d, "terraform-provider-"+Type+"_v"+version), binary, 0o755)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
}

// NetworkMirror is a loopback provider network mirror over HTTPS.
type NetworkMirror struct {
	// URL is the mirror's base URL (give it to network_mirror).
	URL string
	// CAFile holds the certificate Terraform must trust: point
	// SSL_CERT_FILE of the agent at it.
	CAFile string
	// Served counts the bytes of provider packages served (GET); Requests
	// every request.
	Served, Requests atomic.Int64
}

// ServeNetworkMirror serves the provider at each version (packaged from
// binary) under /providers/.
func ServeNetworkMirror(t testing.TB, binary []byte, versions ...string) *NetworkMirror {
	t.Helper()
	m := &NetworkMirror{}
	base := "/providers/" + Hostname + "/" + Namespace + "/" + Type + "/"
	packages := map[string][]byte{}
	index := map[string]map[string]any{}
	for _, v := range versions {
		packages[archiveName(v)] = Package(t, binary, v)
		index[v] = map[string]any{}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+base+"{file}", func(w http.ResponseWriter, r *http.Request) {
		m.Requests.Add(1)
		file := r.PathValue("file")
		switch {
		case file == "index.json":
			writeJSON(w, map[string]any{"versions": index})
		case strings.HasSuffix(file, ".json"):
			v := strings.TrimSuffix(file, ".json")
			pkg, ok := packages[archiveName(v)]
			if !ok {
				http.NotFound(w, r)
				return
			}
			sum := sha256.Sum256(pkg)
			writeJSON(w, map[string]any{"archives": map[string]any{Platform: map[string]any{
				"url": archiveName(v), "hashes": []string{"zh:" + hex.EncodeToString(sum[:])},
			}}})
		default:
			pkg, ok := packages[file]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(pkg)))
			if r.Method == http.MethodHead { // go-getter asks for the size first
				return
			}
			n, _ := w.Write(pkg)
			m.Served.Add(int64(n))
		}
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	m.URL = srv.URL + "/providers/"
	m.CAFile = filepath.Join(t.TempDir(), "mirror-ca.pem")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(m.CAFile, cert, 0o644); err != nil {
		t.Fatal(err)
	}
	return m
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
