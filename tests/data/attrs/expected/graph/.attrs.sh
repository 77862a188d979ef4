declare builder='/bin/sh'
declare name='attrs-graph'
declare -A outputs=(['out']='/nib/store/i5zhz32lxskxj51wqf02bjhpijk5p20s-attrs-graph' )
declare system='x86_64-linux'
