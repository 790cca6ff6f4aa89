// Draws the feature map and a page of feature cards at a time from the embedded JSON.
// Every run-provided string reaches the page through textContent, never innerHTML.
(function(){
  var el=document.getElementById('report-data');if(!el)return;
  var D=JSON.parse(el.textContent),N=D.n,PER_PAGE=50;
  var VCLS=D.verdicts.map(function(_,k){return 'v'+k;});
  var byId={};for(var i=0;i<N;i++)byId[D.id[i]]=i;
  // Card details (texts, keywords, scores, shares) are indexed by position in D.detail, the rows
  // that have them; D.detail null: every row has them, at its own index.
  var det={};if(D.detail)D.detail.forEach(function(r,j){det[r]=j;});
  function dj(i){return D.detail?(i in det?det[i]:null):i;}

  function h(tag,cls,text){var e=document.createElement(tag);if(cls)e.className=cls;if(text!=null)e.textContent=text;return e;}
  function f3(x){return x==null?'n/a':(+x).toFixed(3);}
  function pct(x){if(x==null)return 'n/a';var p=100*x;return p===0?'0%':(p>=10?p.toFixed(1):p.toPrecision(2))+'%';}
  function colourOf(cls){var s=h('i',cls);s.style.display='none';document.body.appendChild(s);
    var c=getComputedStyle(s).backgroundColor;document.body.removeChild(s);return c;}

  // ---- feature cards ----
  var list=document.getElementById('cards'),pager=document.getElementById('pager');
  var q=document.getElementById('q'),vsel=document.getElementById('verdict'),sort=document.getElementById('sort');
  var minscore=document.getElementById('minscore'),shown=document.getElementById('nshown');
  var hay=null,rows=[],page=0;
  function haystack(i){var j=dj(i),s='#'+D.id[i]+' '+D.label[i];
    if(j!=null)s+=' '+(D.keywords[j]||[]).join(' ')+' '+D.tfidf[j]+' '+(D.texts[j]||[]).join(' ');return s.toLowerCase();}
  function sortKey(key){
    if(key==='id')return function(i){return D.id[i];};
    if(key==='density')return function(i){return D.density[i];};
    if(key==='confidence')return function(i){var s=D.label_score?D.label_score[i]:null;
      return D.rank[D.verdict[i]]*10+(s==null?0:s);};  // interpretable first, then mixed, token, weak, dead
    if(D[key])return function(i){return D[key][i];};
    var col=D.scores&&D.scores[key];return function(i){var j=dj(i);return col&&j!=null?col[j]:null;};
  }
  function compute(){
    if(!list)return;
    var words=q.value.toLowerCase().split(/\s+/).filter(Boolean),v=vsel.value,key=sort.value;
    var vi=D.verdicts.indexOf(v),ms=parseFloat(minscore.value),out=[];
    if(words.length&&!hay){hay=[];for(var i=0;i<N;i++)hay.push(haystack(i));}
    for(var i=0;i<N;i++){
      if(v==='live'&&D.verdict[i]===D.dead)continue;
      if(vi>=0&&D.verdict[i]!==vi)continue;
      if(!isNaN(ms)&&!(D.label_score&&D.label_score[i]!=null&&D.label_score[i]>=ms))continue;
      var ok=true;
      for(var j=0;j<words.length&&ok;j++){var w=words[j];
        ok=/^#\d+$/.test(w)?('#'+D.id[i])===w:hay[i].indexOf(w)>=0;}
      if(ok)out.push(i);
    }
    var k=sortKey(key),asc=key==='id';
    out.sort(function(a,b){var x=k(a),y=k(b);
      if(x==null)return y==null?a-b:1;if(y==null)return -1;return (asc?x-y:y-x)||a-b;});
    rows=out;page=0;render();
  }
  function card(i){
    var v=D.verdict[i],vname=D.verdicts[v],note=D.notes[v],c=h('article','card '+vname);c.id='f'+D.id[i];
    var h3=h('h3');h3.appendChild(h('span','fid','#'+D.id[i]+' '));
    h3.appendChild(h('span','badge '+VCLS[D.verdict[i]],vname));
    if(D.label[i])h3.appendChild(h('span','lab',D.label[i]));
    else{h3.appendChild(h('em','nolab','no label'));if(D.why[i])h3.appendChild(h('span','why',' ('+D.why[i]+')'));}
    var s=D.label_score?D.label_score[i]:null;
    if(v===D.trusted&&s!=null)h3.appendChild(h('span','why',' · confidence '+f3(s)));
    c.appendChild(h3);
    if(note)c.appendChild(h('p','warn',note[0]+(note[1]&&s!=null?' Label score '+f3(s)+', not a confidence.':'')));
    var j=dj(i),sh=(j!=null&&D.shares[j])||[];
    if(sh.length){var bar=h('div','bar');sh.forEach(function(p){var seg=h('i','c'+p[0]);seg.style.width=(100*p[1]).toFixed(1)+'%';
      seg.title=D.domains[p[0]]+' '+pct(p[1]);bar.appendChild(seg);});c.appendChild(bar);}
    var meta=['density '+pct(D.density[i])];
    if(D.coherence&&D.coherence[i]!=null)meta.push('coherence '+f3(D.coherence[i]));
    if(D.main[i]!=null)meta.push('main domain '+D.domains[D.main[i]]+
      (D.domain_specificity&&D.domain_specificity[i]!=null?' (specificity '+D.domain_specificity[i].toFixed(2)+')':''));
    c.appendChild(h('p','meta',meta.join(' · ')));
    if(j==null){c.appendChild(h('p','note','Top texts, keywords and scores are embedded for the '+D.detail.length.toLocaleString()+
      ' most confident features only (to keep this page small); features.parquet holds them for every feature.'));return c;}
    var g=scoreGrid(j);if(g)c.appendChild(g);
    var kw=(D.keywords[j]||[]).join(', ');
    if(kw&&kw!==D.label[i])c.appendChild(h('p','kw','keywords: '+kw));
    if(D.tfidf[j])c.appendChild(h('p','tf','TF-IDF: '+D.tfidf[j]));
    var tx=D.texts[j]||[];
    if(tx.length){var ol=h('ol','tx');tx.forEach(function(t,m){var li=h('li');
      if(D.acts[j]&&D.acts[j][m]!=null)li.appendChild(h('b',null,f3(D.acts[j][m])));
      var d=D.tdom[j]?D.tdom[j][m]:null;
      if(d!=null){li.appendChild(h('i','sw c'+d));li.appendChild(h('em',null,D.domains[d]));}
      li.appendChild(document.createTextNode(t));ol.appendChild(li);});c.appendChild(ol);}
    return c;
  }
  // A small table per card: rows = label sources, columns = scores present in this run.
  var gridRows=[],gridCols=[];
  for(var col in D.score_grid){var rc=D.score_grid[col];
    if(gridRows.indexOf(rc[0])<0)gridRows.push(rc[0]);if(gridCols.indexOf(rc[1])<0)gridCols.push(rc[1]);}
  function scoreGrid(j){
    var cells={},any=false;for(var col in D.score_grid){var x=D.scores[col][j];
      if(x!=null){cells[D.score_grid[col].join('|')]=x;any=true;}}
    if(!any)return null;
    var t=h('table','sg'),tr=h('tr');tr.appendChild(h('th'));gridCols.forEach(function(c){tr.appendChild(h('th',null,c));});t.appendChild(tr);
    gridRows.forEach(function(r){var row=h('tr');row.appendChild(h('th',null,r));
      gridCols.forEach(function(c){var x=cells[r+'|'+c];row.appendChild(h('td','n',x==null?'':f3(x)));});t.appendChild(row);});
    return t;
  }
  function render(){
    var pages=Math.max(1,Math.ceil(rows.length/PER_PAGE));page=Math.min(page,pages-1);
    var f=document.createDocumentFragment();
    rows.slice(page*PER_PAGE,(page+1)*PER_PAGE).forEach(function(i){f.appendChild(card(i));});
    list.textContent='';list.appendChild(f);
    shown.textContent=rows.length.toLocaleString()+' features · cards '+(rows.length?page*PER_PAGE+1:0)+'–'+
      Math.min(rows.length,(page+1)*PER_PAGE)+' · top texts: up to '+D.texts_per_card+', cut to '+D.text_chars+' characters'+
      (D.detail?' (embedded for the '+D.detail.length.toLocaleString()+' most confident features)':'');
    pager.textContent='';
    function btn(label,to){var b=h('button',null,label);b.disabled=to<0||to>=pages||to===page;
      b.onclick=function(){page=to;render();list.scrollIntoView();};pager.appendChild(b);}
    btn('‹ previous',page-1);pager.appendChild(h('span',null,' page '+(page+1)+' of '+pages+' '));btn('next ›',page+1);
  }
  function openHash(){var m=/^#f(\d+)$/.exec(location.hash);if(!m||!list||!(m[1] in byId))return;
    q.value='#'+m[1];vsel.value='all';minscore.value='';compute();list.scrollIntoView();}
  if(list){var timer=null;
    q.addEventListener('input',function(){clearTimeout(timer);timer=setTimeout(compute,150);});
    [vsel,sort,minscore].forEach(function(e){e.addEventListener('change',compute);});
    window.addEventListener('hashchange',openHash);compute();openHash();}

  // ---- feature map ----
  var cv=document.getElementById('map');
  if(cv&&D.xy){
    var ctx=cv.getContext('2d'),W=cv.width,H=cv.height,PAD=12,mode=document.getElementById('map-colour');
    var dom=D.domains.map(function(_,k){return colourOf('c'+k);}),grey=colourOf('cx'),dead=colourOf('cdead');
    var ver=VCLS.map(colourOf);
    function px(i){var p=D.xy[i];return p?[PAD+p[0]/1000*(W-2*PAD),H-PAD-p[1]/1000*(H-2*PAD)]:null;}
    function draw(){ctx.clearRect(0,0,W,H);var byVerdict=mode.value==='verdict';
      document.getElementById('map-legend-domain').hidden=byVerdict;document.getElementById('map-legend-verdict').hidden=!byVerdict;
      // dead and weak first so that interpretable and mixed features are drawn on top
      var order=[];for(var i=0;i<N;i++)order.push(i);order.sort(function(a,b){return D.verdict[b]-D.verdict[a];});
      order.forEach(function(i){var p=px(i);if(!p)return;
        ctx.fillStyle=byVerdict?ver[D.verdict[i]]:(D.verdict[i]===D.dead?dead:(D.main[i]!=null?dom[D.main[i]]:grey));
        ctx.globalAlpha=0.8;ctx.beginPath();ctx.arc(p[0],p[1],3,0,6.2832);ctx.fill();});ctx.globalAlpha=1;}
    function nearest(ev){var r=cv.getBoundingClientRect(),x=(ev.clientX-r.left)*W/r.width,y=(ev.clientY-r.top)*H/r.height;
      var best=-1,bd=64;for(var i=0;i<N;i++){var p=px(i);if(!p)continue;var d=(p[0]-x)*(p[0]-x)+(p[1]-y)*(p[1]-y);
        if(d<bd){bd=d;best=i;}}return best;}
    var hover=document.getElementById('map-hover');
    cv.addEventListener('mousemove',function(ev){var i=nearest(ev);
      hover.textContent=i<0?'\u00a0':'#'+D.id[i]+' '+(D.label[i]||'(no label)')+' · '+D.verdicts[D.verdict[i]]+
        (D.main[i]!=null?' · '+D.domains[D.main[i]]:'');});
    cv.addEventListener('click',function(ev){var i=nearest(ev);if(i>=0)location.hash='#f'+D.id[i];});
    mode.addEventListener('change',draw);draw();
  }
})();
