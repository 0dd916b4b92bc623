package scan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

// Media types of the SBOMs Airlock writes and attaches.
const (
	MediaTypeCycloneDX = "application/vnd.cyclonedx+json"
	MediaTypeSPDX      = "application/spdx+json"
	MediaTypeReport    = "application/vnd.airlock.scan.report.v1+json"
)

// Properties Airlock adds to each SBOM component.
const (
	propLocation  = "airlock:location"
	propLayer     = "airlock:layer"
	propEcosystem = "airlock:ecosystem"
	propSource    = "airlock:sourcePackage"
	propOwned     = "airlock:ownedByDistro"
)

func pkgRef(i int, p Package) string {
	h := sha256.Sum256([]byte(p.Type + "\x00" + p.Name + "\x00" + p.Version + "\x00" + p.Location))
	return fmt.Sprintf("pkg-%d-%s", i, hex.EncodeToString(h[:6]))
}

// CycloneDX builds the report's inventory as a CycloneDX 1.6 BOM: the
// image as the described component, each package with its purl, the file
// that proves it (evidence occurrence) and the layer that added it.
func (r *Report) CycloneDX() *cdx.BOM {
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + uuidFrom(r.Image.Digest+r.ScannedAt.String())
	imgRef := "image-" + strings.TrimPrefix(r.Image.Digest, "sha256:")
	name := r.Image.Repository
	if name == "" {
		name = r.Image.Reference
	}
	bom.Metadata = &cdx.Metadata{
		Timestamp: r.ScannedAt.UTC().Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{
			{Type: cdx.ComponentTypeApplication, Name: "airlock", Version: r.Scanner.Version},
			{Type: cdx.ComponentTypeLibrary, Name: "osv-scalibr", Version: strings.TrimPrefix(InventoryLibrary, "osv-scalibr ")},
		}},
		Component: &cdx.Component{
			BOMRef: imgRef, Type: cdx.ComponentTypeContainer, Name: name, Version: r.Image.Digest,
			Hashes:     &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: strings.TrimPrefix(r.Image.Digest, "sha256:")}},
			Properties: &[]cdx.Property{{Name: "airlock:platform", Value: r.Image.Platform}},
		},
	}
	if r.Image.OS.ID != "" {
		*bom.Metadata.Component.Properties = append(*bom.Metadata.Component.Properties,
			cdx.Property{Name: "airlock:os", Value: r.Image.OS.ID + " " + r.Image.OS.VersionID})
	}
	comps := make([]cdx.Component, 0, len(r.Packages))
	deps := make([]string, 0, len(r.Packages))
	for i, p := range r.Packages {
		ref := pkgRef(i, p)
		props := []cdx.Property{{Name: propLocation, Value: p.Location}, {Name: propEcosystem, Value: p.Ecosystem}}
		if p.Layer != "" {
			props = append(props, cdx.Property{Name: propLayer, Value: p.Layer})
		}
		if p.Source != "" && p.Source != p.Name {
			props = append(props, cdx.Property{Name: propSource, Value: p.Source})
		}
		if p.OwnedByDistro {
			props = append(props, cdx.Property{Name: propOwned, Value: "true"})
		}
		c := cdx.Component{
			BOMRef: ref, Type: cdx.ComponentTypeLibrary, Name: p.Name, Version: p.Version, PackageURL: p.PURL,
			Properties: &props,
			Evidence:   &cdx.Evidence{Occurrences: &[]cdx.EvidenceOccurrence{{Location: p.Location}}},
		}
		comps = append(comps, c)
		deps = append(deps, ref)
	}
	bom.Components = &comps
	bom.Dependencies = &[]cdx.Dependency{{Ref: imgRef, Dependencies: &deps}}
	return bom
}

// WriteCycloneDX writes the CycloneDX 1.6 JSON document.
func (r *Report) WriteCycloneDX(w io.Writer) error {
	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	return enc.EncodeVersion(r.CycloneDX(), cdx.SpecVersion1_6)
}

var spdxIDChars = regexp.MustCompile(`[^A-Za-z0-9.-]`)

// SPDX builds the report's inventory as an SPDX 2.3 document: the image as
// the described package, containing one package per inventory entry.
func (r *Report) SPDX() *spdx.Document {
	name := r.Image.Repository
	if name == "" {
		name = r.Image.Reference
	}
	imgID := common.ElementID("Image-" + strings.TrimPrefix(r.Image.Digest, "sha256:")[:min(16, len(strings.TrimPrefix(r.Image.Digest, "sha256:")))])
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      name + "@" + r.Image.Digest,
		DocumentNamespace: "https://airlock.dev/spdx/" + strings.TrimPrefix(r.Image.Digest, "sha256:") + "-" + uuidFrom(r.ScannedAt.String()),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: "airlock-" + r.Scanner.Version}, {CreatorType: "Tool", Creator: strings.ReplaceAll(InventoryLibrary, " ", "-")}},
			Created:  r.ScannedAt.UTC().Format(time.RFC3339),
		},
	}
	img := &spdx.Package{
		PackageName: name, PackageSPDXIdentifier: imgID, PackageVersion: r.Image.Digest,
		PackageDownloadLocation: "NOASSERTION", FilesAnalyzed: false, PrimaryPackagePurpose: "CONTAINER",
		PackageChecksums:        []common.Checksum{{Algorithm: common.SHA256, Value: strings.TrimPrefix(r.Image.Digest, "sha256:")}},
		PackageLicenseConcluded: "NOASSERTION", PackageLicenseDeclared: "NOASSERTION", PackageCopyrightText: "NOASSERTION",
	}
	doc.Packages = append(doc.Packages, img)
	doc.Relationships = append(doc.Relationships, &spdx.Relationship{
		RefA: common.MakeDocElementID("", "DOCUMENT"), RefB: common.MakeDocElementID("", string(imgID)), Relationship: common.TypeRelationshipDescribe,
	})
	for i, p := range r.Packages {
		id := common.ElementID("Package-" + spdxIDChars.ReplaceAllString(pkgRef(i, p), "-"))
		info := "found in " + p.Location
		if p.Layer != "" {
			info += " (layer " + p.Layer + ")"
		}
		sp := &spdx.Package{
			PackageName: p.Name, PackageSPDXIdentifier: id, PackageVersion: p.Version,
			PackageDownloadLocation: "NOASSERTION", FilesAnalyzed: false, PackageSourceInfo: info,
			PackageLicenseConcluded: "NOASSERTION", PackageLicenseDeclared: "NOASSERTION", PackageCopyrightText: "NOASSERTION",
			PrimaryPackagePurpose: "LIBRARY",
		}
		if p.PURL != "" {
			sp.PackageExternalReferences = []*spdx.PackageExternalReference{{Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: p.PURL}}
		}
		doc.Packages = append(doc.Packages, sp)
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", string(imgID)), RefB: common.MakeDocElementID("", string(id)), Relationship: common.TypeRelationshipContains,
		})
	}
	return doc
}

// WriteSPDX writes the SPDX 2.3 JSON document.
func (r *Report) WriteSPDX(w io.Writer) error {
	return spdxjson.Write(r.SPDX(), w, spdxjson.Indent("  "))
}

// uuidFrom makes a deterministic version-4-shaped UUID from s, so the same
// report always yields the same SBOM bytes (and referrer digest).
func uuidFrom(s string) string {
	h := sha256.Sum256([]byte(s))
	h[6] = (h[6] & 0x0f) | 0x40
	h[8] = (h[8] & 0x3f) | 0x80
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}
