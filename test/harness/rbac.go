package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TokenUser is a user the apiserver authenticates by a static bearer token.
type TokenUser struct {
	Name   string
	Token  string
	Groups []string
}

// authFlags are the kube-apiserver flags for opts.RBAC and opts.TokenUsers;
// the token file is written to dir.
func authFlags(dir string, opts APIServerOptions) ([]string, error) {
	var flags []string
	if opts.RBAC {
		flags = append(flags, "--authorization-mode=RBAC")
	}
	if len(opts.TokenUsers) > 0 {
		var b strings.Builder
		for _, u := range opts.TokenUsers {
			// token,user,uid,"group1,group2"
			fmt.Fprintf(&b, "%s,%s,%s,\"%s\"\n", u.Token, u.Name, u.Name, strings.Join(u.Groups, ","))
		}
		path := filepath.Join(dir, "tokens.csv")
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			return nil, err
		}
		flags = append(flags, "--token-auth-file="+path)
	}
	return flags, nil
}

// UserKubeconfig writes a kubeconfig that logs in as u (a TokenUser the
// apiserver was started with) and returns its path.
func (a *APIServer) UserKubeconfig(dir string, u TokenUser) (string, error) {
	cfg := rest.AnonymousClientConfig(a.Config)
	cfg.BearerToken = u.Token
	path := filepath.Join(dir, "kubeconfig-"+u.Name)
	return path, WriteKubeconfig(path, cfg, u.Name)
}

// GrantClusterRole creates a ClusterRole with rules and binds it to user.
func GrantClusterRole(ctx context.Context, kc kubernetes.Interface, name, user string, rules []rbacv1.PolicyRule) error {
	if _, err := kc.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules,
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating ClusterRole %s: %w", name, err)
	}
	if _, err := kc.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("binding ClusterRole %s to %s: %w", name, user, err)
	}
	return nil
}
