package relay

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Cloud names an Azure cloud and the host suffix its Relay namespaces use.
// Nothing in this package assumes the public suffix except ParseNamespace's
// documented default for a bare namespace name.
type Cloud struct {
	// Name is the cloud's name as the Azure CLI spells it.
	Name string
	// RelaySuffix is the DNS suffix of Relay (Service Bus) namespaces.
	RelaySuffix string
}

// The clouds Relay is offered in. Entra ID authentication is not available
// for Relay in Azure China, which therefore needs SAS.
var (
	AzurePublic       = Cloud{Name: "AzureCloud", RelaySuffix: "servicebus.windows.net"}
	AzureUSGovernment = Cloud{Name: "AzureUSGovernment", RelaySuffix: "servicebus.usgovcloudapi.net"}
	AzureChina        = Cloud{Name: "AzureChinaCloud", RelaySuffix: "servicebus.chinacloudapi.cn"}
)

// CloudByName returns the cloud for a name such as "public", "AzureCloud",
// "usgovernment", "AzureUSGovernment", "china" or "AzureChinaCloud"
// (case-insensitive).
func CloudByName(name string) (Cloud, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "public", "azurecloud", "azurepubliccloud", "":
		return AzurePublic, nil
	case "usgovernment", "azureusgovernment", "azureusgovernmentcloud", "usgov", "gov":
		return AzureUSGovernment, nil
	case "china", "azurechinacloud", "azurechina":
		return AzureChina, nil
	}
	return Cloud{}, fmt.Errorf("cannot resolve cloud %q: want public, usgovernment or china", name)
}

// Namespace is a parsed Relay namespace: where to connect and, when it came
// from a connection string, the SAS rule and entity given there.
type Namespace struct {
	// Host is the namespace's host name, with a port only when one was given
	// (local test relays); for example "myns.servicebus.windows.net".
	Host string
	// KeyName and Key are the SharedAccessKeyName and SharedAccessKey of a
	// connection string; empty otherwise.
	KeyName string
	Key     string
	// SharedAccessSignature is a pre-signed token from a connection string
	// (SharedAccessSignature=...); empty otherwise.
	SharedAccessSignature string
	// EntityPath is the hybrid connection named by a connection string.
	EntityPath string
}

// NamespaceOption changes how ParseNamespace resolves a bare name.
type NamespaceOption func(*Cloud)

// InCloud resolves bare namespace names in the given cloud.
func InCloud(c Cloud) NamespaceOption { return func(dst *Cloud) { *dst = c } }

// WithSuffix resolves bare namespace names with a host suffix such as
// "servicebus.usgovcloudapi.net" (for clouds not listed here).
func WithSuffix(suffix string) NamespaceOption {
	return func(dst *Cloud) { *dst = Cloud{Name: "custom", RelaySuffix: strings.Trim(suffix, ".")} }
}

// ErrInvalidNamespace is wrapped by every ParseNamespace error.
var ErrInvalidNamespace = errors.New("invalid relay namespace")

// ParseNamespace accepts:
//
//   - a bare namespace name ("myns"), completed with the cloud's suffix; the
//     default is public Azure (servicebus.windows.net), use InCloud or
//     WithSuffix for Azure Government or Azure China;
//   - a host ("myns.servicebus.usgovcloudapi.net", "127.0.0.1:9354"), or a
//     URL with sb, https, wss, http or ws scheme whose host is taken;
//   - a connection string
//     ("Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=...;SharedAccessKey=...;EntityPath=...").
func ParseNamespace(s string, opts ...NamespaceOption) (Namespace, error) {
	cloud := AzurePublic
	for _, o := range opts {
		o(&cloud)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return Namespace{}, fmt.Errorf("%w: empty", ErrInvalidNamespace)
	}
	if strings.Contains(s, "=") {
		return parseConnectionString(s)
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return Namespace{}, fmt.Errorf("%w: %q: %w", ErrInvalidNamespace, s, err)
		}
		switch strings.ToLower(u.Scheme) {
		case "sb", "https", "wss", "http", "ws":
		default:
			return Namespace{}, fmt.Errorf("%w: %q: unsupported scheme %q", ErrInvalidNamespace, s, u.Scheme)
		}
		if u.Path != "" && u.Path != "/" {
			return Namespace{}, fmt.Errorf("%w: %q: a namespace URL has no path (give the hybrid connection separately)", ErrInvalidNamespace, s)
		}
		return hostNamespace(u.Host)
	}
	if strings.ContainsAny(s, ".:") {
		return hostNamespace(s)
	}
	if err := validLabel(s); err != nil {
		return Namespace{}, fmt.Errorf("%w: %q: %w", ErrInvalidNamespace, s, err)
	}
	if cloud.RelaySuffix == "" {
		return Namespace{}, fmt.Errorf("%w: %q: no host suffix for cloud %q", ErrInvalidNamespace, s, cloud.Name)
	}
	return Namespace{Host: strings.ToLower(s) + "." + cloud.RelaySuffix}, nil
}

func hostNamespace(h string) (Namespace, error) {
	h = strings.TrimSuffix(strings.TrimSpace(h), "/")
	if h == "" {
		return Namespace{}, fmt.Errorf("%w: empty host", ErrInvalidNamespace)
	}
	host := h
	if strings.Contains(h, ":") {
		hh, port, err := net.SplitHostPort(h)
		if err != nil {
			return Namespace{}, fmt.Errorf("%w: %q: %w", ErrInvalidNamespace, h, err)
		}
		if port == "" {
			return Namespace{}, fmt.Errorf("%w: %q: empty port", ErrInvalidNamespace, h)
		}
		host = hh
	}
	if net.ParseIP(host) == nil {
		for _, label := range strings.Split(host, ".") {
			if err := validLabel(label); err != nil {
				return Namespace{}, fmt.Errorf("%w: %q: %w", ErrInvalidNamespace, h, err)
			}
		}
	}
	return Namespace{Host: strings.ToLower(h)}, nil
}

// validLabel checks one DNS label: letters, digits and inner hyphens.
func validLabel(l string) error {
	if l == "" || len(l) > 63 {
		return fmt.Errorf("host label %q must be 1 to 63 characters", l)
	}
	for i, r := range l {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' && i > 0 && i < len(l)-1
		if !ok {
			return fmt.Errorf("host label %q may hold only letters, digits and inner hyphens", l)
		}
	}
	return nil
}

func parseConnectionString(s string) (Namespace, error) {
	var ns Namespace
	var endpoint string
	for i, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			// Not echoed: a key pasted without its name would be printed.
			return Namespace{}, fmt.Errorf("%w: connection string part %d is not key=value", ErrInvalidNamespace, i+1)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "endpoint":
			endpoint = strings.TrimSpace(v)
		case "sharedaccesskeyname":
			ns.KeyName = strings.TrimSpace(v)
		case "sharedaccesskey":
			ns.Key = strings.TrimSpace(v)
		case "sharedaccesssignature":
			ns.SharedAccessSignature = strings.TrimSpace(v)
		case "entitypath":
			ns.EntityPath = strings.Trim(strings.TrimSpace(v), "/")
		default:
			// Other keys (TransportType, Authentication, ...) do not change
			// where or how this package connects; ignore them like the SDKs
			// ignore keys they do not know.
		}
	}
	if endpoint == "" {
		return Namespace{}, fmt.Errorf("%w: connection string has no Endpoint", ErrInvalidNamespace)
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return Namespace{}, fmt.Errorf("%w: connection string Endpoint %q is not a URL like sb://host/", ErrInvalidNamespace, endpoint)
	}
	if !strings.EqualFold(u.Scheme, "sb") {
		return Namespace{}, fmt.Errorf("%w: connection string Endpoint %q must use the sb:// scheme", ErrInvalidNamespace, endpoint)
	}
	hn, err := hostNamespace(u.Host)
	if err != nil {
		return Namespace{}, err
	}
	ns.Host = hn.Host
	if (ns.KeyName == "") != (ns.Key == "") {
		return Namespace{}, fmt.Errorf("%w: connection string needs both SharedAccessKeyName and SharedAccessKey", ErrInvalidNamespace)
	}
	return ns, nil
}

// ConnectionString renders the namespace (and optional rule and entity) as a
// connection string ParseNamespace reads back.
func (n Namespace) ConnectionString() string {
	var b strings.Builder
	b.WriteString("Endpoint=sb://" + n.Host + "/")
	if n.KeyName != "" {
		b.WriteString(";SharedAccessKeyName=" + n.KeyName + ";SharedAccessKey=" + n.Key)
	}
	if n.SharedAccessSignature != "" {
		b.WriteString(";SharedAccessSignature=" + n.SharedAccessSignature)
	}
	if n.EntityPath != "" {
		b.WriteString(";EntityPath=" + n.EntityPath)
	}
	return b.String()
}

// Credential returns the SAS credential a connection string carried, or nil
// when it carried none.
func (n Namespace) Credential() Credential {
	switch {
	case n.KeyName != "":
		return NewSASCredential(n.KeyName, n.Key)
	case n.SharedAccessSignature != "":
		return NewStaticSAS(n.SharedAccessSignature)
	}
	return nil
}
