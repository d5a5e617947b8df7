package images

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// SPDX 2.3 document, the subset we write.
type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	Name             string            `json:"name"`
	SPDXID           string            `json:"SPDXID"`
	VersionInfo      string            `json:"versionInfo,omitempty"`
	DownloadLocation string            `json:"downloadLocation"`
	FilesAnalyzed    bool              `json:"filesAnalyzed"`
	Checksums        []spdxChecksum    `json:"checksums,omitempty"`
	ExternalRefs     []spdxExternalRef `json:"externalRefs,omitempty"`
	PrimaryPurpose   string            `json:"primaryPackagePurpose,omitempty"`
}

type spdxChecksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type spdxExternalRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// SBOM is the SPDX 2.3 JSON bill of materials of the binary at path, from
// its embedded build information: the binary (with its SHA-256), the Go
// standard library of its toolchain, every module it links, and the
// Terraform beside it, if any.
func SBOM(path, name string, src Source, tf *terraformBinary) ([]byte, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the build information of %s: %w", path, err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	doc := spdxDocument{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT",
		Name:              "bote-" + name + "-" + src.Version,
		DocumentNamespace: fmt.Sprintf("https://spdx.bote.dev/%s/%s/%s", name, src.Version, hex.EncodeToString(sum[:])),
		CreationInfo:      spdxCreationInfo{Created: src.Created.UTC().Format(time.RFC3339), Creators: []string{"Tool: bote-images"}},
	}
	const root = "SPDXRef-Package-binary"
	doc.Packages = append(doc.Packages, spdxPackage{
		Name: name, SPDXID: root, VersionInfo: src.Version, DownloadLocation: "NOASSERTION",
		Checksums:      []spdxChecksum{{"SHA256", hex.EncodeToString(sum[:])}},
		ExternalRefs:   []spdxExternalRef{purl(bi.Path, src.Version)},
		PrimaryPurpose: "APPLICATION",
	})
	doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", root})
	add := func(id string, p spdxPackage) {
		p.SPDXID, p.DownloadLocation = id, "NOASSERTION"
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelationship{root, "DEPENDS_ON", id})
	}
	add("SPDXRef-Package-stdlib", spdxPackage{Name: "stdlib", VersionInfo: bi.GoVersion,
		ExternalRefs: []spdxExternalRef{purl("stdlib", bi.GoVersion)}})
	for i, m := range bi.Deps {
		if m.Replace != nil {
			m = m.Replace
		}
		add(fmt.Sprintf("SPDXRef-Package-go-%d", i), spdxPackage{Name: m.Path, VersionInfo: m.Version,
			ExternalRefs: []spdxExternalRef{purl(m.Path, m.Version)}})
	}
	if tf != nil {
		add("SPDXRef-Package-terraform", spdxPackage{Name: "terraform", VersionInfo: tf.version,
			Checksums:    []spdxChecksum{{"SHA256", tf.archiveSHA256}},
			ExternalRefs: []spdxExternalRef{purl("github.com/hashicorp/terraform", "v"+tf.version)}})
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func purl(path, version string) spdxExternalRef {
	return spdxExternalRef{"PACKAGE-MANAGER", "purl", "pkg:golang/" + path + "@" + version}
}
