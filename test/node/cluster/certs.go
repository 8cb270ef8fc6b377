package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the cluster's certificates, made in Go (no openssl needed): one CA,
// the API server's serving certificate, one admin client certificate
// (O=system:masters, used by every component and the tests) and the service
// account key pair.
type pki struct {
	CA, CAKey             string
	Serving, ServingKey   string
	Admin, AdminKey       string
	SAKey, SAPub          string
	caCert                *x509.Certificate
	caSigner              *ecdsa.PrivateKey
	AdminPEM, AdminKeyPEM []byte
	CAPEM                 []byte
}

func writePEM(path, typ string, der []byte) ([]byte, error) {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	return b, os.WriteFile(path, b, 0o600)
}

func newKey() (*ecdsa.PrivateKey, []byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalECPrivateKey(k)
	return k, der, err
}

func makePKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pki{
		CA: filepath.Join(dir, "ca.crt"), CAKey: filepath.Join(dir, "ca.key"),
		Serving: filepath.Join(dir, "apiserver.crt"), ServingKey: filepath.Join(dir, "apiserver.key"),
		Admin: filepath.Join(dir, "admin.crt"), AdminKey: filepath.Join(dir, "admin.key"),
		SAKey: filepath.Join(dir, "sa.key"), SAPub: filepath.Join(dir, "sa.pub"),
	}
	now := time.Now().Add(-time.Hour)
	caKey, caDER, err := newKey()
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "coreguard-node-test-ca"},
		NotBefore: now, NotAfter: now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	if p.CAPEM, err = writePEM(p.CA, "CERTIFICATE", der); err != nil {
		return nil, err
	}
	if _, err := writePEM(p.CAKey, "EC PRIVATE KEY", caDER); err != nil {
		return nil, err
	}
	p.caCert, _ = x509.ParseCertificate(der)
	p.caSigner = caKey

	if _, _, err := p.leaf(p.Serving, p.ServingKey, 2, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(serviceIP)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return nil, err
	}
	if p.AdminPEM, p.AdminKeyPEM, err = p.leaf(p.Admin, p.AdminKey, 3, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, err
	}

	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	if _, err := writePEM(p.SAKey, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(sa)); err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return nil, err
	}
	if _, err := writePEM(p.SAPub, "PUBLIC KEY", pub); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pki) leaf(certPath, keyPath string, serial int64, tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
	key, der, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = big.NewInt(serial)
	tmpl.NotBefore = p.caCert.NotBefore
	tmpl.NotAfter = p.caCert.NotAfter
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	cder, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caSigner)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate %s: %w", certPath, err)
	}
	if certPEM, err = writePEM(certPath, "CERTIFICATE", cder); err != nil {
		return nil, nil, err
	}
	if keyPEM, err = writePEM(keyPath, "EC PRIVATE KEY", der); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

// kubeconfig writes an admin kubeconfig for server.
func (p *pki) kubeconfig(path, server string) error {
	text := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: node-test
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: node-test
  context: {cluster: node-test, user: admin}
current-context: node-test
`, server, p.CA, p.Admin, p.AdminKey)
	return os.WriteFile(path, []byte(text), 0o600)
}
