/** Who a request is, as the authenticators say it (upstream's user.Info). */
export interface UserInfo {
  name: string;
  uid: string;
  groups: string[];
}
